"""Raw rows from anywhere but a local data file: the three hubs, `script_url` and cloud storage.

- `hf_hub_url`, `ms_hub_url`, `om_hub_url`: the Hugging Face Hub through `datasets`, ModelScope through
  `modelscope`, OpenMind through `openmind`, each imported only when an entry loads from it.
- `script_url`: LLaMA-Factory hands it, joined to the dataset folder, to `datasets.load_dataset`. Since datasets 4
  that no longer runs loading scripts, so a script is refused with a message that says what to do instead. What
  still loads is a folder of data files (the configs in its README are the subsets, its file names the splits,
  `folder` a sub-folder), a single data file, or a hub id `org/name` with data files.
- `cloud_file_name`: one file, or the data files of a folder, on S3 (`s3://`, needs s3fs) or Google Cloud Storage
  (`gs://`, `gcs://`, needs gcsfs), through fsspec; anonymous access is tried first, then the usual credentials.
  The files are read by the same readers, with the same messages, as local files.

`check_source` makes the checks that need no download (package installed, no loading script), for the checks
before a launch.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from engine.data.files import SUPPORTED_EXTENSIONS, Rows, check_extension, read_files
from engine.data.registry import DatasetAttr, registry_path
from engine.errors import DataError
from engine.paths import resolve_dataset_dir

_HUB_NAMES = {"hf_hub": "the Hugging Face Hub", "ms_hub": "the ModelScope Hub", "om_hub": "the OpenMind Hub"}
_HUB_PACKAGES = {"ms_hub": "modelscope", "om_hub": "openmind"}
_CLOUD_BACKENDS = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs"}
# How each backend is asked for anonymous access (public buckets need no credentials).
_CLOUD_ANONYMOUS = {"s3": {"anon": True}, "gs": {"token": "anon"}, "gcs": {"token": "anon"}}
# What `datasets` says when it meets a loading script (it raises a bare RuntimeError).
_SCRIPT_REFUSAL = "Dataset scripts are no longer supported"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def check_source(attr: DatasetAttr, dataset_dir: str | Path | None = None) -> None:
    """Refuse, without downloading anything, a dataset whose source cannot load here (a missing package, a
    loading script, a `script_url` that is nowhere); files and hub ids themselves are looked at when loading."""
    package = _HUB_PACKAGES.get(attr.load_from)
    if package and importlib.util.find_spec(package) is None:
        raise _package_missing(attr)
    if attr.load_from == "script":
        script_target(attr, dataset_dir)
    elif attr.load_from == "cloud_file":
        _cloud_filesystem_class(attr)


def _package_missing(attr: DatasetAttr) -> DataError:
    where = {"name": attr.name, "hub_id": attr.path_or_id}
    if attr.load_from == "om_hub":
        return DataError("om_hub_unavailable", **where)
    return DataError("hub_package_missing", install='pip install "llm-studio[modelscope]"',
                     hub=_HUB_NAMES[attr.load_from], **where)


def load_hub_rows(attr: DatasetAttr, token: str | None = None) -> list[dict]:
    """Raw rows of a dataset on the Hugging Face, ModelScope or OpenMind hub (`token`: that hub's, for private
    datasets; None: the hub client's own login)."""
    hub = _HUB_NAMES.get(attr.load_from)
    if hub is None:
        raise ValueError(f"load_hub_rows loads hub datasets; dataset '{attr.name}' loads from {attr.load_from}")
    where = {"name": attr.name, "hub_id": attr.path_or_id, "hub": hub}
    try:
        if attr.load_from == "ms_hub":
            try:
                from modelscope import MsDataset
            except ImportError:
                raise _package_missing(attr) from None
            dataset = MsDataset.load(attr.path_or_id, subset_name=attr.subset, split=attr.split, data_dir=attr.folder,
                                     **({"token": token} if token else {}))
            if hasattr(dataset, "to_hf_dataset"):
                dataset = dataset.to_hf_dataset()
        elif attr.load_from == "om_hub":
            try:
                from openmind import OmDataset
            except ImportError:
                raise _package_missing(attr) from None
            dataset = OmDataset.load_dataset(path=attr.path_or_id, name=attr.subset, split=attr.split,
                                             data_dir=attr.folder, **({"token": token} if token else {}))
        else:
            dataset = _load_dataset(attr.path_or_id, attr, token)
    except DataError:
        raise
    except Exception as err:
        raise _load_error(err, attr, where) from err
    return _as_rows(dataset)


def _load_dataset(path: str, attr: DatasetAttr, token: str | None = None) -> Any:
    """`datasets.load_dataset` with the entry's subset, split and folder (the only place `datasets` is imported)."""
    import datasets

    extra = {"token": token} if token else {}
    return datasets.load_dataset(path, name=attr.subset, split=attr.split, data_dir=attr.folder, **extra)


def _reason(err: Exception) -> str:
    """An exception for a message: its type and text, and its cause's (datasets wraps the useful part)."""
    cause = err.__cause__ or err.__context__
    text = f"{type(err).__name__}: {err}"
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({type(cause).__name__}: {cause})"
    return text[:300]


def _as_rows(dataset: Any) -> list[dict]:
    return dataset.to_list() if hasattr(dataset, "to_list") else [dict(row) for row in dataset]


def _load_error(err: Exception, attr: DatasetAttr, where: dict) -> DataError:
    """The message for a failed `datasets`/hub load: a loading script, else what `_hub_error` makes of it."""
    if _SCRIPT_REFUSAL in str(err):
        return _script_refused(attr)
    return _hub_error(err, where)


def _hub_error(err: Exception, where: dict) -> DataError:
    """A DataError that says whether the hub was unreachable, the id unknown, or the load itself failed."""
    reason = _reason(err)
    names = {cls.__name__ for cls in type(err).__mro__}
    modules = {cls.__module__.split(".")[0] for cls in type(err).__mro__}
    if names & {"DatasetNotFoundError", "RepositoryNotFoundError", "GatedRepoError"}:
        return DataError("hub_dataset_not_found", reason=reason, **where)
    network = isinstance(err, (ConnectionError, TimeoutError)) or bool(modules & {"httpx", "requests", "urllib3"})
    if network or (isinstance(err, OSError) and not isinstance(err, FileNotFoundError)):
        offline = [
            k
            for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
            if os.environ.get(k, "").lower() in ("1", "true", "yes", "on")
        ]
        if offline:
            return DataError("hub_offline", variables=", ".join(offline), reason=reason, **where)
        return DataError("hub_unreachable", reason=reason, **where)
    return DataError("hub_load_failed", reason=reason, **where)


# --- script_url


def _script_refused(attr: DatasetAttr) -> DataError:
    try:
        from importlib.metadata import version

        installed = version("datasets")
    except Exception:  # not installed: the refusal holds for every version this project supports
        installed = "4 or later"
    return DataError("dataset_script_unsupported", name=attr.name, script=attr.path_or_id, version=installed)


def script_target(attr: DatasetAttr, dataset_dir: str | Path | None = None) -> str:
    """What a `script_url` entry loads: the absolute path of a folder or file in the dataset folder, or a hub id.

    A loading script (`x.py`, or a folder `x` holding `x.py`, the layout `datasets` looked for) is refused, as is a
    path outside the dataset folder or one that is neither there nor shaped like a hub id.
    """
    base = Path(os.path.abspath(resolve_dataset_dir(dataset_dir)))
    value = attr.path_or_id
    # Lexical, like file_name: a symlink placed inside the folder on purpose is fine; `..` is not.
    path = Path(os.path.normpath(base / value))
    if path != base and base not in path.parents:
        raise DataError("dataset_script_outside", name=attr.name, script=value, dataset_dir=str(base))
    if path.suffix == ".py" or (path.is_dir() and (path / f"{path.name}.py").is_file()):
        raise _script_refused(attr)
    if path.exists():
        return str(path)
    if _HUB_ID.fullmatch(value):
        return value
    raise DataError("dataset_script_missing", name=attr.name, script=value, path=str(path),
                    registry=str(registry_path(base)))


def load_script_rows(attr: DatasetAttr, dataset_dir: str | Path | None = None) -> list[dict]:
    """Raw rows of a `script_url` entry: a local data folder or file, or a hub dataset, through `datasets`."""
    target = script_target(attr, dataset_dir)
    if not os.path.isabs(target):
        return load_hub_rows(DatasetAttr(**{**vars(attr), "load_from": "hf_hub", "path_or_id": target}))
    if os.path.isfile(target):
        return read_files([(Path(target), attr.path_or_id)], attr.name)
    where = {"name": attr.name, "hub_id": attr.path_or_id, "hub": "a folder of the dataset folder"}
    try:
        dataset = _load_dataset(target, attr)
    except Exception as err:
        if _SCRIPT_REFUSAL in str(err):
            raise _script_refused(attr) from err
        # A local folder: whatever failed, it was not the network.
        raise DataError("hub_load_failed", reason=_reason(err), **where) from err
    return _as_rows(dataset)


# --- cloud_file_name


def _cloud_filesystem_class(attr: DatasetAttr) -> tuple[str, Any]:
    """(protocol, fsspec filesystem class) of a cloud path; a clear message when its backend is not installed."""
    protocol = attr.path_or_id.split("://", 1)[0]
    package = _CLOUD_BACKENDS.get(protocol)
    if package is None:  # the registry check lets only these through
        raise ValueError(f"dataset '{attr.name}': {attr.path_or_id!r} is not an s3://, gs:// or gcs:// path")
    try:
        import fsspec

        return protocol, fsspec.get_filesystem_class(protocol)
    except ImportError:
        raise DataError("cloud_file_backend_missing", name=attr.name, path=attr.path_or_id, package=package) from None


def _cloud_filesystem(attr: DatasetAttr) -> tuple[str, Any]:
    """(protocol, a filesystem that sees the path): anonymous access first, then the configured credentials."""
    protocol, filesystem = _cloud_filesystem_class(attr)
    failure: Exception | None = None
    for options in (_CLOUD_ANONYMOUS[protocol], {}):
        try:
            fs = filesystem(**options)
            if fs.exists(attr.path_or_id):
                return protocol, fs
        except Exception as err:  # each backend raises its own types for denied access and bad credentials
            failure = err
    reason = _reason(failure) if failure else "no such file or folder"
    raise DataError("cloud_file_failed", name=attr.name, path=attr.path_or_id, reason=reason)


def load_cloud_rows(attr: DatasetAttr) -> Rows:
    """Raw rows of a `cloud_file_name` entry: the file, or every data file of the folder in name order."""
    protocol, fs = _cloud_filesystem(attr)
    where = {"name": attr.name, "path": attr.path_or_id}
    try:
        if fs.isdir(attr.path_or_id):
            listed = sorted(str(p) for p in fs.ls(attr.path_or_id, detail=False))
            remote = [p for p in listed if PurePosixPath(p).suffix.lower() in SUPPORTED_EXTENSIONS
                      and not PurePosixPath(p).name.startswith(".")]
            if not remote:
                raise DataError("cloud_file_no_data", supported=", ".join(SUPPORTED_EXTENSIONS), **where)
        else:
            remote = [attr.path_or_id]
    except DataError:
        raise
    except Exception as err:
        raise DataError("cloud_file_failed", reason=_reason(err), **where) from err
    with tempfile.TemporaryDirectory(prefix="cloud-dataset-") as folder:
        files = []
        for index, path in enumerate(remote):
            shown = path if "://" in path else f"{protocol}://{path.lstrip('/')}"
            local = Path(folder) / f"{index}{PurePosixPath(path).suffix.lower()}"
            check_extension(Path(path), shown, attr.name)
            try:
                with fs.open(path, "rb") as source, open(local, "wb") as target:
                    shutil.copyfileobj(source, target)
            except Exception as err:
                raise DataError("cloud_file_failed", reason=_reason(err), **where) from err
            files.append((local, shown))
        return read_files(files, attr.name)
