"""What the image and audio test files share: the demo models' plugins, a training run, a chat backend and the
held-out accuracy of a learning check."""

from __future__ import annotations

import hashlib
from pathlib import Path

from engine.config import config_from_dict

DATA = Path(__file__).resolve().parents[2] / "data"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def media_plugin(model_dir: Path, template: str):
    """(plugin, tokenizer) of a media model under `template`."""
    from engine.model.loader import load_tokenizer
    from engine.multimodal.plugins import get_plugin
    from engine.templates import get_template

    config = config_from_dict({"model_name_or_path": str(model_dir), "template": template})
    tokenizer = load_tokenizer(config.model)
    return get_plugin(get_template(template), tokenizer, config.model), tokenizer


def train_media(model_dir: Path, out: Path, **values) -> Path:
    """A LoRA SFT run (`template` and `dataset` among `values`, which override the defaults); its folder once it
    succeeded."""
    from engine.train.run import run_training

    config = config_from_dict({
        "model_name_or_path": str(model_dir), "stage": "sft", "finetuning_type": "lora", "dataset_dir": str(DATA),
        "output_dir": str(out), "cutoff_len": 256, "per_device_train_batch_size": 8, "learning_rate": 2e-3,
        "num_train_epochs": 100, "report_to": "none", "seed": 42, "save_strategy": "no", **values,
    })
    assert run_training(config) == 0, (out / "running_log.txt").read_text(encoding="utf-8")[-2000:]
    return out


def media_backend(**values):
    from engine.inference.engine import load_backend

    return load_backend(config_from_dict(values))


def accuracy(backend, rows: list[dict], kind: str) -> float:
    """The share of rows whose greedy reply, given the row's media of `kind`, is exactly the reference answer."""
    right = 0
    for row in rows:
        media = {kind: [str(DATA / path) for path in row[kind]]}
        reply = backend.generate([row["messages"][0]], media=media, max_new_tokens=4, temperature=0)
        right += reply.text.strip() == row["messages"][1]["content"]
    return right / len(rows)


def ranking_pairs(folder: Path, name: str, rows: list[dict], answers: list[str], kind: str) -> Path:
    """A ranking dataset `name` in `folder` from a learning check's rows: the right answer chosen, another of
    `answers` rejected, the row's media (column `kind`) shared by both."""
    import json

    pairs = []
    for index, row in enumerate(rows):
        right = row["messages"][1]["content"]
        wrong = [answer for answer in answers if answer != right][index % (len(answers) - 1)]
        pairs.append({"conversations": [{"from": "human", "value": row["messages"][0]["content"]}],
                      "chosen": {"from": "gpt", "value": right}, "rejected": {"from": "gpt", "value": wrong},
                      kind: row[kind]})
    (folder / "pairs.json").write_text(json.dumps(pairs), encoding="utf-8")
    info = {name: {"file_name": "pairs.json", "formatting": "sharegpt", "ranking": True,
                   "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected", kind: kind}}}
    (folder / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    return folder


def lora_targets(model) -> tuple[list[str], list[str]]:
    """`lora_target: all` of a media model: with the default freezing (encoder and projector fixed), and with
    everything open."""
    from engine.model.methods.weights import linear_targets
    from engine.multimodal.parts import frozen_paths

    default = config_from_dict({"model_name_or_path": "x"}).finetuning
    open_all = config_from_dict({"model_name_or_path": "x", "freeze_vision_tower": False,
                                 "freeze_multi_modal_projector": False}).finetuning
    return (linear_targets(model, "all", "lora_target_not_found", frozen=frozen_paths(model, default)),
            linear_targets(model, "all", "lora_target_not_found", frozen=frozen_paths(model, open_all)))


def export_merged(model_dir: Path, run: Path, template: str, export_dir: Path) -> Path:
    """Merge a LoRA run into its media base with `studio export`'s code; the export folder once it succeeded."""
    from engine.export.run import run_export

    config = config_from_dict({"model_name_or_path": str(model_dir), "template": template,
                               "adapter_name_or_path": str(run), "finetuning_type": "lora",
                               "export_dir": str(export_dir)})
    assert run_export(config) == 0
    return export_dir
