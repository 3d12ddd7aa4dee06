"""DFT, ASFT and EAFT: each loss against its formula worked out independently, in both logits layouts, and wired
into the Trainer for stage sft."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from engine.config import load_config
from engine.errors import ConfigError
from engine.train.losses import asft_loss, dft_loss, eaft_loss, loss_function
from engine.train.method_checks import check_sft_loss_choice
from engine.train.run import run_training
from engine.validation import validate_config

VOCAB = 50
# Two rows of six tokens; -100 where nothing is learnt (the prompt, the padding).
LABELS = torch.tensor([[-100, -100, 3, 7, 11, -100],
                       [-100, 5, 9, -100, -100, -100]])


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, 6, VOCAB, generator=generator) * 3, torch.randn(2, 6, VOCAB, generator=generator) * 3


def learnt() -> list[tuple[int, int, int]]:
    """(row, position, target) for each position whose next token is learnt, in row order."""
    return [(b, t, int(LABELS[b, t + 1])) for b in range(2) for t in range(5) if LABELS[b, t + 1] != -100]


def selected(logits: torch.Tensor) -> torch.Tensor:
    """The logits of the learnt positions only, as the model returns them for `logits_to_keep`."""
    return torch.stack([logits[b, t] for b, t, _ in learnt()])


def probabilities(row: torch.Tensor) -> list[float]:
    exps = [math.exp(float(x)) for x in row]
    return [e / sum(exps) for e in exps]


def expected_dft(logits: torch.Tensor) -> float:
    terms = []
    for b, t, target in learnt():
        p = probabilities(logits[b, t])[target]
        terms.append(-math.log(p) * p)
    return sum(terms) / len(terms)


def expected_eaft(logits: torch.Tensor, alpha: float) -> float:
    terms = []
    for b, t, target in learnt():
        ce = -math.log(probabilities(logits[b, t])[target])
        top = sorted((float(x) for x in logits[b, t]), reverse=True)[:20]
        q = probabilities(torch.tensor(top))
        entropy = -sum(x * math.log(x) for x in q)
        terms.append(ce * (entropy / math.log(20)) ** alpha)
    return sum(terms) / len(terms)


def expected_asft(logits: torch.Tensor, ref: torch.Tensor, alpha: float) -> float:
    terms = []
    for b, t, target in learnt():
        p, q = probabilities(logits[b, t]), probabilities(ref[b, t])
        kl = sum(qi * (math.log(qi) - math.log(pi)) for pi, qi in zip(p, q, strict=True))
        terms.append(-math.log(p[target]) * p[target] + alpha * kl)
    return sum(terms) / len(terms)


def test_dft_is_token_loss_weighted_by_its_probability():
    logits, _ = batch()
    assert dft_loss(logits, LABELS).item() == pytest.approx(expected_dft(logits), rel=1e-5)
    assert dft_loss(selected(logits), LABELS).item() == pytest.approx(expected_dft(logits), rel=1e-5)
    # Summed over the accumulated batch's learnt tokens when the Trainer counts them.
    assert dft_loss(logits, LABELS, torch.tensor(10)).item() == pytest.approx(expected_dft(logits) * 5 / 10, rel=1e-5)


def test_dft_weight_carries_no_gradient():
    logits, _ = batch()
    logits.requires_grad_(True)
    dft_loss(logits, LABELS).backward()
    # d/dz of p_y * CE with p_y constant: p_y * (softmax - onehot), averaged over the learnt tokens.
    expected = torch.zeros_like(logits)
    for b, t, target in learnt():
        soft = torch.softmax(logits[b, t].detach(), dim=-1)
        onehot = torch.nn.functional.one_hot(torch.tensor(target), VOCAB).float()
        expected[b, t] = soft[target] * (soft - onehot) / len(learnt())
    assert torch.allclose(logits.grad, expected, atol=1e-6)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.0])
def test_eaft_weights_by_normalised_top20_entropy(alpha: float):
    logits, _ = batch(1)
    assert eaft_loss(logits, LABELS, alpha=alpha).item() == pytest.approx(expected_eaft(logits, alpha), rel=1e-5)
    assert eaft_loss(selected(logits), LABELS, alpha=alpha).item() == pytest.approx(expected_eaft(logits, alpha),
                                                                                     rel=1e-5)


def test_asft_is_dft_plus_kl_to_the_reference():
    logits, ref = batch(2)
    assert asft_loss(logits, ref, LABELS, alpha=0.3).item() == pytest.approx(expected_asft(logits, ref, 0.3), rel=1e-5)
    same = asft_loss(selected(logits), selected(ref), LABELS, alpha=0.3).item()
    assert same == pytest.approx(expected_asft(logits, ref, 0.3), rel=1e-5)
    assert asft_loss(logits, logits, LABELS, alpha=5.0).item() == pytest.approx(expected_dft(logits), rel=1e-5)


def test_nothing_learnt_gives_zero():
    logits, _ = batch()
    nothing = torch.full_like(LABELS, -100)
    assert dft_loss(logits, nothing).item() == 0.0 and eaft_loss(logits, nothing).item() == 0.0


# ---------------------------------------------------------------- checks and wiring


def config_for(*overrides: str, model: str = "demo") -> Any:
    return load_config(None, [f"model_name_or_path={model}", "dataset=identity", *overrides])


@pytest.mark.parametrize(("overrides", "key"), [
    (("use_dft_loss=true", "use_eaft_loss=true"), "sft_losses_conflict"),
    (("use_dft_loss=true", "stage=pt"), "sft_loss_needs_sft"),
    (("use_asft_loss=true", "label_smoothing_factor=0.1"), "sft_loss_with_label_smoothing"),
])
def test_sft_loss_choices_refused(overrides: tuple[str, ...], key: str):
    with pytest.raises(ConfigError) as info:
        check_sft_loss_choice(config_for(*overrides))
    assert info.value.key == key


def test_only_sft_gets_a_loss_function():
    assert loss_function(config_for("use_dft_loss=true", "stage=pt"), None) is None
    assert loss_function(config_for(), None) is None
    check_sft_loss_choice(config_for("use_eaft_loss=true"))


def train(model_dir: Path, out: Path, *overrides: str) -> Path:
    config = validate_config(load_config(None, [
        f"model_name_or_path={model_dir}", f"output_dir={out}", "stage=sft", "dataset=identity", "max_samples=16",
        "max_steps=2", "logging_steps=1", "per_device_train_batch_size=4", "learning_rate=1e-3", "cutoff_len=128",
        "save_steps=1000", "seed=7", *overrides]))
    assert run_training(config) == 0, (out / "running_log.txt").read_text()[-3000:]
    return out


def logged_losses(out: Path) -> list[float]:
    lines = (out / "trainer_log.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines if "loss" in json.loads(line)]


@pytest.mark.slow
def test_dft_run_trains_two_steps(tiny_model_dir: Path, tmp_path: Path):
    from safetensors.torch import load_file

    out = train(tiny_model_dir, tmp_path / "dft", "finetuning_type=full", "use_dft_loss=true")
    plain = train(tiny_model_dir, tmp_path / "ce", "finetuning_type=full")
    dft, ce = logged_losses(out), logged_losses(plain)
    assert len(dft) == 2 and all(0 < d < c for d, c in zip(dft, ce, strict=True))  # p * CE < CE
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "full"])
def test_asft_run_scores_against_the_reference(tiny_model_dir: Path, tmp_path: Path, method: str):
    # At the first step the model is its reference (LoRA: B starts at zero; full: the same weights loaded again),
    # so the KL term is 0 and ASFT's first loss is DFT's.
    asft = logged_losses(train(tiny_model_dir, tmp_path / "asft", f"finetuning_type={method}", "use_asft_loss=true",
                               "asft_alpha=1.0"))
    dft = logged_losses(train(tiny_model_dir, tmp_path / "dft", f"finetuning_type={method}", "use_dft_loss=true"))
    assert asft[0] == pytest.approx(dft[0], rel=1e-4)
    assert len(asft) == 2


def test_trainer_loss_is_the_formula_in_the_selected_logits_layout(tiny_model_dir: Path, tmp_path: Path):
    """The Trainer's loss on a collated batch (logits of the learnt positions only) is DFT on the full logits."""
    from engine.model.loader import load_model, load_tokenizer
    from engine.train.callbacks import AbortCallback
    from engine.train.trainer_setup import build_trainer

    config = load_config(None, [f"model_name_or_path={tiny_model_dir}", f"output_dir={tmp_path}", "use_dft_loss=true",
                                "finetuning_type=full", "report_to=none"])
    tokenizer = load_tokenizer(config.model)
    model = load_model(tokenizer, config.model, config.finetuning, is_trainable=True)
    rows = [{"input_ids": list(range(20, 36)), "labels": [-100] * 6 + list(range(26, 36))},
            {"input_ids": list(range(40, 50)), "labels": [-100] * 3 + list(range(43, 50))}]
    trainer = build_trainer(config, model, tokenizer, rows, None, run_dir=tmp_path, abort=AbortCallback())
    inputs = trainer.data_collator(rows)
    assert trainer.data_collator.select_logits and "logits_to_keep" in inputs
    model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(model, dict(inputs))
        full = model(input_ids=inputs["input_ids"], **{k: v for k, v in inputs.items()
                                                        if k in ("attention_mask", "position_ids")}).logits
    assert loss.item() == pytest.approx(dft_loss(full, inputs["labels"]).item(), rel=1e-5)
