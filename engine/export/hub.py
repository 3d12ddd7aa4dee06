"""The model card (README.md) of an export and its upload to the Hugging Face Hub.

The card says what the model is: the base model, the method and stage, the datasets, the chat template, the
metrics of the training run (its all_results.json) when the adapter comes from a run folder, the files and how
to use them, and the parity check. The upload uses `huggingface_hub` with the token in `HF_TOKEN`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from engine.config import RunConfig, read_yaml
from engine.errors import ConfigError, ModelError
from engine.paths import looks_like_local_path

CARD_FILE = "README.md"
# Files of the run-folder contract that describe the export process, not the model: never uploaded.
NOT_UPLOADED = ["status.json", "trainer_log.jsonl", "running_log.txt", ".lock", "config.yaml", ".*"]


def run_info(run_dir: Path | None) -> dict[str, Any]:
    """The training run's config.yaml and all_results.json (empty mappings when absent or unreadable)."""
    info: dict[str, Any] = {"config": {}, "metrics": {}}
    if run_dir is None:
        return info
    try:
        info["config"] = read_yaml(run_dir / "config.yaml")
    except ConfigError:
        pass
    try:
        metrics = json.loads((run_dir / "all_results.json").read_text(encoding="utf-8"))
        info["metrics"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    except (OSError, ValueError, AttributeError):
        pass
    return info


def is_hub_id(name: str) -> bool:
    """Whether `name` reads as a Hub repository id (`org/name`), not a local folder or the demo model."""
    return name.count("/") == 1 and not looks_like_local_path(name) and not Path(name).expanduser().exists()


def _front_matter(base: str, datasets: list[str], tags: list[str]) -> list[str]:
    lines = ["---", "library_name: transformers"]
    if is_hub_id(base):  # the Hub rejects a card whose base_model is not a repository id
        lines.append(f"base_model: {json.dumps(base)}")
    if datasets:
        lines += ["datasets:"] + [f"- {json.dumps(name)}" for name in datasets]
    lines += ["tags:"] + [f"- {tag}" for tag in tags] + ["---", ""]
    return lines


def model_card(config: RunConfig, template_name: str, files: list[str], run_dir: Path | None,
               parity: dict[str, Any] | None = None, *, dtype: str = "") -> str:
    """The README.md text for the export folder."""
    info = run_info(run_dir)
    trained = info["config"]
    base = str(trained.get("model_name_or_path") or config.model.model_name_or_path)
    datasets = [name.strip() for name in str(trained.get("dataset") or "").split(",") if name.strip()]
    method = str(trained.get("finetuning_type") or config.finetuning.finetuning_type)
    stage = str(trained.get("stage") or "")  # known only when the adapter comes from a run folder
    name = config.model.export_hub_model_id or Path(str(config.model.export_dir)).name
    gguf_files = [f for f in files if f.endswith(".gguf")]
    bits = config.model.export_quantization_bit
    weights = f"{bits}-bit GPTQ" if bits is not None else dtype or config.model.infer_dtype
    tags = ["llm-studio", method, *([stage] if stage else []), *(["gguf"] if gguf_files else [])]
    how = f"{method} ({stage.upper()})" if stage else method
    lines = _front_matter(base, datasets, tags) + [
        f"# {name}", "",
        f"Fine-tuned from `{base}` with {how}, exported by the studio.", "",
        "| | |", "|---|---|",
        f"| Base model | `{base}` |",
        f"| Method | {how} |",
        f"| Adapters merged | {config.model.adapter_name_or_path or '(none)'} |",
        f"| Datasets | {', '.join(f'`{d}`' for d in datasets) or '(not recorded)'} |",
        f"| Chat template | `{template_name}` (saved as chat_template.jinja) |",
        f"| Weights | {weights} |",
        "",
    ]
    if info["metrics"]:
        lines += ["## Training results", "", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |"
                  for key, value in sorted(info["metrics"].items())] + [""]
    if parity is not None:
        lines += ["## Export check", "",
                  f"{parity['matched']} of {parity['total']} fixed prompts give the same greedy answer "
                  f"({parity['max_new_tokens']} tokens) from the exported model as from the base model with its "
                  "adapters (see parity.json).", ""]
    lines += ["## Files", ""] + [f"- `{f}`" for f in files] + [""]
    lines += ["## Use", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
              f'tokenizer = AutoTokenizer.from_pretrained("{name}")',
              f'model = AutoModelForCausalLM.from_pretrained("{name}")',
              'ids = tokenizer.apply_chat_template([{"role": "user", "content": "Hello!"}], '
              'add_generation_prompt=True, return_tensors="pt")',
              "print(tokenizer.decode(model.generate(**ids, max_new_tokens=64)[0]))", "```", ""]
    if gguf_files:
        lines += [f"llama.cpp: `llama-cli -m {gguf_files[0]} -cnv`.", ""]
    if "Modelfile" in files:
        lines += [f"Ollama: `ollama create {Path(name).name} -f Modelfile` in the model folder.", ""]
    return "\n".join(lines)


def write_model_card(folder: Path, text: str) -> Path:
    """Write README.md into the export folder."""
    path = folder / CARD_FILE
    path.write_text(text, encoding="utf-8")
    return path


def hub_token(config: RunConfig) -> str:
    """The Hub token: `HF_TOKEN`, else `hf_hub_token`; a ConfigError when there is none."""
    token = os.environ.get("HF_TOKEN") or config.model.hf_hub_token
    if not token:
        raise ConfigError("export_hub_no_token", repo=config.model.export_hub_model_id)
    return token


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def upload_to_hub(folder: Path, config: RunConfig) -> str:
    """Create (if needed) the `export_hub_model_id` repository and upload the export folder; returns its URL."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    repo = str(config.model.export_hub_model_id)
    if constants.is_offline_mode():
        raise ModelError("export_hub_offline", repo=repo)
    api = HfApi(token=hub_token(config))
    try:
        url = api.create_repo(repo, private=config.export.export_hub_private, exist_ok=True, repo_type="model")
        api.upload_folder(repo_id=repo, folder_path=folder, repo_type="model", ignore_patterns=NOT_UPLOADED,
                          commit_message="Upload model exported by the studio")
    except OfflineModeIsEnabled:
        raise ModelError("export_hub_offline", repo=repo) from None
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status in (401, 403):
            raise ModelError("export_hub_denied", repo=repo) from err
        raise ModelError("export_hub_upload_failed", repo=repo, error=_first_line(err)) from err
    except (ConnectionError, TimeoutError, OSError) as err:
        raise ModelError("export_hub_unreachable", repo=repo, error=_first_line(err)) from err
    except Exception as err:  # httpx's network errors are not OSErrors
        if type(err).__module__.startswith("httpx"):
            raise ModelError("export_hub_unreachable", repo=repo, error=_first_line(err)) from err
        raise
    return str(getattr(url, "url", url))
