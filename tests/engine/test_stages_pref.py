"""Preference stages (rm, dpo, kto, orpo, simpo) on the tiny model: data rendering, config checks, a few steps each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.config import load_config
from engine.errors import ConfigError
from engine.runfolder import list_checkpoints, read_trainer_log
from engine.validation import validate_config

COMMON_FILES = {"config.yaml", "trainer_log.jsonl", "running_log.txt", "status.json", "all_results.json",
                "train_results.json", "training_loss.png", "trainer_state.json", "training_args.bin", "tokenizer.json",
                "tokenizer_config.json", "chat_template.jinja", ".lock"}
LORA_FILES = {"adapter_config.json", "adapter_model.safetensors", "README.md"}
FULL_FILES = {"config.json", "generation_config.json", "model.safetensors", "README.md"}
BASE_LOG_KEYS = {"current_steps", "total_steps", "loss", "lr", "epoch", "percentage", "elapsed_time",
                 "remaining_time", "grad_norm"}
DPO_CURVE = "training_rewards_accuracies.png"  # beside training_loss.png, as LLaMA-Factory plots DPO runs
# The curves each stage plots besides the loss (LLaMA-Factory's choice: engine.plotting.STAGE_CURVES).
CURVES = {"rm": set(), "dpo": {DPO_CURVE}, "kto": {"training_rewards_chosen.png"}, "orpo": {DPO_CURVE},
          "simpo": {DPO_CURVE}}
# stage overrides → (metrics the stage must log, whether TRL keeps a frozen copy of the adapter under ref/)
STAGES = {
    "rm": (["stage=rm", "dataset=dpo_en_demo"], {"accuracy", "margin"}, False),
    "dpo": (["stage=dpo", "dataset=dpo_en_demo", "pref_ftx=0.5"], {"rewards/margins", "rewards/accuracies"}, True),
    "kto": (["stage=kto", "dataset=kto_en_demo"], {"kl", "rewards/chosen"}, True),
    "orpo": (["stage=dpo", "pref_loss=orpo", "dataset=dpo_en_demo"], {"rewards/margins", "log_odds_ratio"}, False),
    "simpo": (["stage=dpo", "pref_loss=simpo", "dataset=dpo_en_demo"], {"rewards/margins", "rewards/accuracies"},
              False),
}


def overrides(model_dir: Path, out: Path, *extra: str) -> list[str]:
    return [f"model_name_or_path={model_dir}", f"output_dir={out}", "max_steps=3", "logging_steps=1",
            "per_device_train_batch_size=2", "learning_rate=1e-3", "cutoff_len=64", "save_steps=1000", "seed=7",
            "max_samples=12", "finetuning_type=lora", "lora_rank=4", *extra]


def train(model_dir: Path, out: Path, *extra: str) -> int:
    from engine.train.run import run_training

    return run_training(validate_config(load_config(None, overrides(model_dir, out, *extra))))


def load_tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def error_key(*items: str) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(load_config(None, ["model_name_or_path=demo", *items]))
    return info.value.key


class Recorder:
    """A trainer callback (added through make_callbacks) that copies the named weights when training starts."""

    def __init__(self, wanted: str) -> None:
        self.wanted, self.before = wanted, {}

    def callback(self) -> Any:
        from transformers import TrainerCallback

        recorder = self

        class Snapshot(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
                recorder.before = {name: param.detach().clone() for name, param in model.named_parameters()
                                   if recorder.wanted in name and param.requires_grad}

        return Snapshot()


@pytest.fixture()
def add_callbacks(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Append extra callbacks (made from the run's AbortCallback) to every trainer built in the test."""
    from engine.train import trainer_setup

    def install(*factories: Any) -> None:
        original = trainer_setup.make_callbacks

        def make_callbacks(config: Any, run_dir: Path, abort: Any) -> list[Any]:
            return original(config, run_dir, abort) + [factory(abort) for factory in factories]

        monkeypatch.setattr(trainer_setup, "make_callbacks", make_callbacks)

    return install


# ---------------------------------------------------------------- config checks (no model)


@pytest.mark.parametrize(("items", "key"), [
    (["stage=dpo", "dataset=identity"], "stage_needs_ranking"),
    (["stage=rm", "dataset=kto_en_demo"], "stage_needs_ranking"),
    (["stage=dpo", "pref_loss=orpo", "dataset=alpaca_en_demo"], "stage_needs_ranking"),
    (["stage=kto", "dataset=dpo_en_demo"], "stage_needs_kto"),
    (["stage=kto", "dataset=identity"], "stage_needs_kto"),
    (["stage=dpo", "dataset=dpo_en_demo", "eval_dataset=identity"], "stage_needs_ranking"),
    (["stage=sft", "dataset=dpo_en_demo"], "dataset_stage_mismatch"),
    (["stage=sft", "dataset=kto_en_demo"], "dataset_stage_mismatch"),
    (["stage=pt", "dataset=dpo_en_demo"], "dataset_stage_mismatch"),
    (["stage=dpo", "dataset=dpo_en_demo", "pref_loss=kto_pair"], "pref_loss_unavailable"),
    (["stage=dpo", "dataset=dpo_en_demo", "pref_loss=hinge", "dpo_label_smoothing=0.1"],
     "label_smoothing_unsupported"),
    (["stage=kto", "dataset=kto_en_demo", "per_device_train_batch_size=1"], "kto_batch_size"),
    (["stage=dpo", "dataset=dpo_en_demo", "ref_model=./no/such/model"], "model_path_missing"),
])
def test_stage_and_settings_mistakes_are_caught_before_loading(items: list[str], key: str):
    assert error_key(*items) == key


def test_stage_errors_name_the_dataset_and_what_to_use():
    with pytest.raises(ConfigError) as info:
        validate_config(load_config(None, ["stage=dpo", "dataset=identity"]))
    assert "'identity'" in str(info.value) and "dpo_en_demo" in str(info.value)
    with pytest.raises(ConfigError) as info:
        validate_config(load_config(None, ["stage=kto", "dataset=dpo_en_demo"]))
    assert "kto_tag" in str(info.value) and "kto_en_demo" in str(info.value)


@pytest.mark.parametrize(("items", "module"), [
    (["stage=rm"], "engine.train.rm"),
    (["stage=dpo"], "engine.train.dpo"),
    (["stage=dpo", "pref_loss=ipo"], "engine.train.dpo"),
    (["stage=dpo", "pref_loss=orpo"], "engine.train.orpo"),
    (["stage=dpo", "pref_loss=simpo"], "engine.train.simpo"),
    (["stage=kto"], "engine.train.kto"),
    (["stage=sft", "pref_loss=orpo"], "engine.train.sft"),
])
def test_stage_module_dispatch(items: list[str], module: str):
    from engine.train import stage_module

    assert stage_module(load_config(None, items)) == module


def test_dpo_loss_mapping():
    from engine.train.dpo import dpo_loss

    def mapped(*items: str) -> dict:
        return dpo_loss(load_config(None, ["stage=dpo", *items]))

    assert mapped() == {"loss_type": ["sigmoid"], "loss_weights": None, "label_smoothing": 0.0, "ld_alpha": None}
    assert mapped("pref_loss=hinge", "pref_ftx=0.3") == {"loss_type": ["hinge", "sft"], "loss_weights": [1.0, 0.3],
                                                         "label_smoothing": 0.0, "ld_alpha": None}
    assert mapped("dpo_label_smoothing=0.1")["loss_type"] == ["robust"]
    # LLaMA-Factory's (DPO + w·BCO) / (1 + w), then the SFT term added with its own weight
    bco = mapped("pref_bco_weight=0.25", "pref_ftx=0.5")
    assert bco["loss_type"] == ["sigmoid", "bco_pair", "sft"]
    assert bco["loss_weights"] == pytest.approx([0.8, 0.2, 0.5])
    assert mapped("ld_alpha=0.5")["ld_alpha"] == 0.5 and mapped("ld_alpha=0.5")["loss_weights"] is None


# ---------------------------------------------------------------- data rendering


@pytest.fixture(scope="module")
def demo_tokenizer(tiny_model_dir: Path) -> tuple[Any, Any]:
    from engine.model.chat_template import load_template
    from engine.model.loader import load_tokenizer

    config = load_config(None, [f"model_name_or_path={tiny_model_dir}"])
    tokenizer = load_tokenizer(config.model)
    return tokenizer, load_template(None, str(tiny_model_dir), tokenizer)


def _examples(*items: str, stage: str = "dpo") -> tuple[Any, list[dict]]:
    from engine.data.pipeline import load_split_examples

    config = load_config(None, [f"stage={stage}", *items])
    return config, load_split_examples(config, require_response=True)[0]


def test_pairs_tokenize_exactly_like_sft(demo_tokenizer: tuple[Any, Any]):
    """TRL tokenizes prompt and prompt + reply: the reply tokens must be those SFT trains, end marker included."""
    from engine.data.preference import build_preference_datasets
    from engine.templates import IGNORE_INDEX, render_conversation

    tokenizer, template = demo_tokenizer
    config, examples = _examples("dataset=dpo_en_demo", "cutoff_len=4096")
    rows, _ = build_preference_datasets(config, template, tokenizer, "pairs")
    assert len(rows) == len(examples) > 100
    for example, row in zip(examples, rows, strict=True):
        prompt = tokenizer(row["prompt"])["input_ids"]
        for key in ("chosen", "rejected"):
            full = tokenizer(row["prompt"] + row[key])["input_ids"]
            reply = {"role": "assistant", "content": example[key]}
            ids, labels = render_conversation(template, tokenizer, [*example["messages"], reply], example["system"])
            assert full == ids and full[:len(prompt)] == prompt
            # SFT's loss on the last turn starts exactly where TRL's completion starts.
            assert labels[len(prompt):] == ids[len(prompt):] and labels[len(prompt) - 1] == IGNORE_INDEX
            assert row[key].endswith("<|im_end|>\n")  # the newline after a reply is trained, as in SFT


def test_a_bos_the_tokenizer_adds_itself_is_not_doubled(tiny_model_dir: Path):
    """Templates write `{bos}`; DPO/KTO tokenize with the tokenizer's own special tokens: the prompt drops its BOS."""
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    from engine.data.preference import auto_prefix, build_preference_datasets
    from engine.templates import get_template, render_conversation

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.bos_token = "<|endoftext|>"  # a Llama-like tokenizer: it prepends BOS to every text by itself
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single="<|endoftext|> $A", pair="<|endoftext|> $A $B", special_tokens=[("<|endoftext|>", 0)])
    # prefix "{bos}"; a header that ends on a newline (TRL tokenizes prompt + reply in one go, so a header ending in a
    # space, like `default`'s "Assistant: ", merges with the reply's first word there, unlike in SFT)
    template = get_template("intern2")
    config, examples = _examples("dataset=dpo_en_demo", "cutoff_len=4096", "max_samples=5")
    rows, _ = build_preference_datasets(config, template, tokenizer, "pairs", strip_prefix=auto_prefix(tokenizer))
    for example, row in zip(examples, rows, strict=True):
        full = tokenizer(row["prompt"] + row["chosen"])["input_ids"]
        reply = {"role": "assistant", "content": example["chosen"]}
        assert full == render_conversation(template, tokenizer, [*example["messages"], reply])[0]
        assert full[0] == 0 and full[1] != 0


def test_long_pairs_are_cut_like_sft(demo_tokenizer: tuple[Any, Any]):
    from engine.data.preference import build_preference_datasets
    from engine.templates import render_conversation

    tokenizer, template = demo_tokenizer
    config, examples = _examples("dataset=dpo_en_demo", "cutoff_len=48")
    rows, _ = build_preference_datasets(config, template, tokenizer, "reward")
    assert len(rows) == len(examples)
    for example, row in zip(examples, rows, strict=True):
        longer = max(("chosen", "rejected"), key=lambda k: len(tokenizer.encode(example[k])))
        reply = {"role": "assistant", "content": example[longer]}
        ids, _ = render_conversation(template, tokenizer, [*example["messages"], reply], example["system"],
                                     cutoff_len=48)
        assert row[f"{longer}_ids"] == ids  # token ids: exactly SFT's cut
        assert len(row["chosen_ids"]) <= 48 and len(row["rejected_ids"]) <= 48
    texts, _ = build_preference_datasets(config, template, tokenizer, "pairs")
    for row in texts:  # text rows: decoded from the kept tokens; the prompt still ends with the assistant header
        assert row["prompt"].endswith("<|im_start|>assistant\n")
        assert len(tokenizer(row["prompt"] + row["chosen"])["input_ids"]) <= 48 + 2


def test_kto_rows_keep_the_tag_and_shuffle(demo_tokenizer: tuple[Any, Any]):
    from engine.data.preference import build_preference_datasets

    tokenizer, template = demo_tokenizer
    config, examples = _examples("dataset=kto_en_demo", "cutoff_len=4096", stage="kto")
    rows, _ = build_preference_datasets(config, template, tokenizer, "kto")
    assert set(rows.column_names) == {"prompt", "completion", "label"}
    assert sorted(rows["label"]) == sorted(bool(e["kto_tag"]) for e in examples)
    assert {True, False} == set(rows["label"])
    replies = {e["messages"][-1]["content"] + "<|im_end|>\n" for e in examples}
    assert set(rows["completion"]) == replies
    assert rows["completion"] != [e["messages"][-1]["content"] + "<|im_end|>\n" for e in examples], "shuffled once"


# ---------------------------------------------------------------- training


@pytest.mark.slow
@pytest.mark.parametrize("name", list(STAGES))
def test_stage_trains_and_fills_the_run_folder(name: str, tiny_model_dir: Path, tmp_path: Path, add_callbacks: Any):
    items, metrics, has_ref = STAGES[name]
    recorder = Recorder("score")
    add_callbacks(lambda abort: recorder.callback())
    out = tmp_path / name
    assert train(tiny_model_dir, out, *items) == 0, (out / "running_log.txt").read_text()[-3000:]

    assert {p.name for p in out.iterdir() if p.is_file()} == COMMON_FILES | LORA_FILES | CURVES[name]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["checkpoint-3"] + (["ref"] if has_ref else [])
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "finished" and status["exit_code"] == 0 and status["error"] is None
    records = read_trainer_log(out)[0]
    assert [r["current_steps"] for r in records] == [1, 2, 3]
    assert BASE_LOG_KEYS | metrics <= set(records[-1]), sorted(set(records[-1]))
    assert "train_loss" in json.loads((out / "all_results.json").read_text())
    import torch

    args = torch.load(out / "training_args.bin", weights_only=False)  # TRL defaults both to on, even on CPU
    assert args.bf16 is False and args.activation_checkpointing is False and args.max_length == 64

    adapter = load_tensors(out / "adapter_model.safetensors")
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b), "B starts at zero: training must move it"
    if has_ref:  # the reference is the untouched starting adapter: B still zero
        ref = load_tensors(out / "ref" / "adapter_model.safetensors")
        assert all(v.abs().sum() == 0 for k, v in ref.items() if "lora_B" in k)
    if name == "rm":  # the randomly initialised score head is trained and saved with the adapter
        (before,) = recorder.before.values()
        (after,) = [v for k, v in adapter.items() if "score" in k]
        assert not torch.equal(before.float(), after.float())
        saved = json.loads((out / "adapter_config.json").read_text())
        assert saved["task_type"] == "SEQ_CLS" and "score" in saved["modules_to_save"]
        assert f"model_name_or_path: {tiny_model_dir}" in (out / "config.yaml").read_text()


@pytest.mark.slow
@pytest.mark.parametrize(("extra", "losses", "weights", "ld_alpha"), [
    (["pref_bco_weight=0.5"], ["sigmoid", "bco_pair"], [2 / 3, 1 / 3], None),
    (["ld_alpha=0.5"], ["sigmoid"], None, 0.5),
])
def test_dpo_extras_reach_trl_and_train(extra: list[str], losses: list[str], weights: list[float] | None,
                                        ld_alpha: float | None, tiny_model_dir: Path, tmp_path: Path,
                                        add_callbacks: Any):
    """pref_bco_weight and ld_alpha in the DPOConfig the trainer runs with, and two steps that move the adapter."""
    seen = {}

    def record(abort: Any) -> Any:
        from transformers import TrainerCallback

        class Args(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
                seen.update(loss_type=args.loss_type, loss_weights=args.loss_weights, ld_alpha=args.ld_alpha)

        return Args()

    add_callbacks(record)
    out = tmp_path / "dpo"
    assert train(tiny_model_dir, out, "stage=dpo", "dataset=dpo_en_demo", "max_steps=2", *extra) == 0, \
        (out / "running_log.txt").read_text()[-3000:]
    assert seen["loss_type"] == losses and seen["ld_alpha"] == ld_alpha
    assert seen["loss_weights"] == (pytest.approx(weights) if weights else None)
    records = read_trainer_log(out)[0]
    assert [r["current_steps"] for r in records] == [1, 2] and all(r["loss"] > 0 for r in records)
    assert records[-1]["accuracy"] == records[-1]["rewards/accuracies"]  # LLaMA-Factory's name for it too
    adapter = load_tensors(out / "adapter_model.safetensors")
    assert all(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "lora"])
def test_dpo_with_a_separate_reference_model(method: str, tiny_model_dir: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch):
    """Full training reloads the base as the reference; with LoRA an explicit ref_model replaces the adapter copy."""
    from engine.train import pref_setup

    loaded = []
    original = pref_setup.load_reference_model
    monkeypatch.setattr(pref_setup, "load_reference_model", lambda *a: loaded.append(original(*a)) or loaded[-1])
    out = tmp_path / method
    extra = ["finetuning_type=full"] if method == "full" else [f"ref_model={tiny_model_dir}"]
    assert train(tiny_model_dir, out, "stage=dpo", "dataset=dpo_en_demo", *extra) == 0, \
        (out / "running_log.txt").read_text()[-3000:]
    (reference,) = loaded
    assert reference is not None and not any(p.requires_grad for p in reference.parameters())
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["checkpoint-3"]
    files = {p.name for p in out.iterdir() if p.is_file()}
    assert files == COMMON_FILES | {DPO_CURVE} | (FULL_FILES if method == "full" else LORA_FILES)
    assert "rewards/margins" in read_trainer_log(out)[0][-1]


@pytest.mark.slow
def test_dpo_abort_saves_a_checkpoint_then_resume_continues(tiny_model_dir: Path, tmp_path: Path,
                                                            add_callbacks: Any):
    from transformers import TrainerCallback

    class AbortAfterTwoSteps(TrainerCallback):
        """Stands in for SIGTERM: raises the abort flag the signal handler would set."""

        def __init__(self, abort: Any) -> None:
            self.abort = abort

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            if state.global_step == 2:
                self.abort.requested = True

    add_callbacks(AbortAfterTwoSteps)  # the resumed run starts past step 2, so it is not stopped again
    out = tmp_path / "run"
    assert train(tiny_model_dir, out, "stage=dpo", "dataset=dpo_en_demo", "max_steps=8") == 0
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "aborted"
    checkpoints = list_checkpoints(out)
    assert [c.name for c in checkpoints] == ["checkpoint-3"] and status["checkpoint"] == str(checkpoints[-1])
    assert (checkpoints[-1] / "ref" / "adapter_model.safetensors").is_file()

    assert train(tiny_model_dir, out, "stage=dpo", "dataset=dpo_en_demo", "max_steps=5",
                 "resume_from_checkpoint=true") == 0
    records = read_trainer_log(out)[0]
    assert [r["current_steps"] for r in records] == [1, 2, 3, 4, 5], "the resumed run continues the step count"
    assert all("rewards/margins" in r for r in records)
    assert json.loads((out / "status.json").read_text())["state"] == "finished"
