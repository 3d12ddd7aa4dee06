"""Loading failures from transformers and huggingface_hub, turned into `ModelError`s that say what to do.

A missing folder, no network, a gated or unknown repo, a truncated weight file, remote code not trusted: each
becomes a message key under `error.`. The model loader and the adapter loader both wrap their loads in
`translated_errors`; this module sits below both so neither imports the other for it.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.config.model import ModelArguments
from engine.errors import ModelError, Setting
from engine.failures import exception_chain


def _is_hub_connection_error(exc: BaseException) -> bool:
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    network = ("ConnectError", "ConnectTimeout", "TimeoutException", "NetworkError", "ProxyError", "ReadTimeout")
    return isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError)) or any(
        cls.__name__ in network for cls in type(exc).__mro__
    )


def _hub_error(chain: list[BaseException], name: str, revision: str) -> ModelError | None:
    """The ModelError for a failed Hub download, or None when the failure is not about the Hub."""
    from huggingface_hub import constants
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    for exc in chain:
        if isinstance(exc, GatedRepoError):
            return ModelError("model_hub_gated", name=name)
        if isinstance(exc, RevisionNotFoundError):
            return ModelError("model_hub_revision", name=name, revision=revision)
        if isinstance(exc, RepositoryNotFoundError):
            return ModelError("model_hub_not_found", name=name)
    text = " ".join(str(exc) for exc in chain)
    if any(_is_hub_connection_error(exc) for exc in chain) or "couldn't connect" in text:
        if constants.is_offline_mode():
            return ModelError("model_hub_offline", name=name, setting=Setting("model_name_or_path"))
        return ModelError("model_hub_unreachable", name=name)
    http = next((exc for exc in chain if isinstance(exc, HfHubHTTPError)), None)
    if http is not None:
        return ModelError("model_hub_unreachable", name=name)
    return None


def _is_weight_file_error(chain: list[BaseException]) -> bool:
    text = " ".join(str(exc) for exc in chain)
    return any(type(exc).__name__ == "SafetensorError" for exc in chain) or any(
        marker in text for marker in ("PytorchStreamReader", "deserializ", "failed finding central directory")
    )


def _cached_snapshot(name: str, model_args: ModelArguments) -> str | None:
    """The download cache folder of a Hub model, to name its damaged file (None when not cached)."""
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(name, revision=model_args.model_revision, cache_dir=model_args.cache_dir,
                                 local_files_only=True)
    except Exception:  # any failure only means the message names the model instead of the file
        return None


def translate_load_error(exc: BaseException, name: str, model_args: ModelArguments,
                         folder: str | None = None) -> ModelError:
    """The ModelError a user should see for `exc`, raised while loading `name` (files in `folder` when local)."""
    chain = list(exception_chain(exc))
    text = " ".join(str(item) for item in chain)
    if _is_weight_file_error(chain):
        bad = find_corrupt_weights(folder or _cached_snapshot(name, model_args))
        file, problem = bad if bad else (name, str(exc))
        return ModelError("model_weights_corrupt", file=file, problem=problem)
    if "trust_remote_code" in text:
        return ModelError("model_remote_code", name=name)
    hub = None if folder else _hub_error(chain, name, model_args.model_revision)
    if hub is not None:
        return hub
    if "no file named" in text:
        return ModelError("model_weights_missing", path=name)
    if "does not recognize this architecture" in text or "Unrecognized model" in text:
        return ModelError("model_type_unknown", name=name, error=str(exc).splitlines()[0])
    if "attn_implementation" in text:
        return ModelError("attention_unsupported", impl=model_args.flash_attn, name=name,
                          error=str(exc).splitlines()[0])
    return ModelError("model_load_failed", name=name, error=f"{type(exc).__name__}: {exc}")


@contextmanager
def translated_errors(name: str, model_args: ModelArguments, folder: str | None = None) -> Iterator[None]:
    """Turn library errors raised inside the block into `ModelError`s (programming errors pass through)."""
    try:
        yield
    except ModelError:
        raise
    except (OSError, ValueError, RuntimeError, ImportError, KeyError, EOFError) as exc:
        raise translate_load_error(exc, name, model_args, folder) from exc
    except Exception as exc:
        if type(exc).__name__ != "SafetensorError":  # safetensors' error derives from Exception only
            raise
        raise translate_load_error(exc, name, model_args, folder) from exc


def _check_safetensors(path: Path) -> str | None:
    """Why a .safetensors file is damaged (its header must describe exactly the bytes that follow), or None."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(64)
        if head.startswith(b"version https://git-lfs"):
            return "it is a Git LFS pointer, not the weights (run `git lfs pull` in the model folder)"
        if len(head) < 8:
            return f"only {size} bytes"
        header_len = int.from_bytes(head[:8], "little")
        if header_len > size - 8:
            return f"the file is cut short ({size} bytes, the header alone needs {header_len + 8})"
        f.seek(8)
        try:
            header = json.loads(f.read(header_len))
        except (ValueError, UnicodeDecodeError):
            return "its header is not valid JSON"
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    expected = 8 + header_len + max(ends, default=0)
    if expected != size:
        return f"the file has {size} bytes but its header describes {expected}"
    return None


def find_corrupt_weights(folder: str | os.PathLike[str] | None) -> tuple[str, str] | None:
    """(file, problem) for the first damaged weight file in `folder`, or None when all look whole."""
    if folder is None or not Path(folder).is_dir():
        return None
    for path in sorted(Path(folder).iterdir()):
        problem = None
        if path.suffix == ".safetensors":
            problem = _check_safetensors(path)
        elif path.suffix == ".bin" and path.stat().st_size > 0 and not zipfile.is_zipfile(path):
            problem = "it is not a complete PyTorch checkpoint"
        if problem:
            return str(path), problem
    return None
