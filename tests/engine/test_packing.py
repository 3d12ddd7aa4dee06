"""Packing, padding-free batches, selective logits and per-example attention give the same results as padded rows."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch

from engine.config import config_from_dict
from engine.data.preprocess import SequenceCollator, loss_positions, pack_rows
from engine.model import boosters
from engine.model.loader import load_model, load_tokenizer
from engine.templates import IGNORE_INDEX
from engine.train.trainer_setup import batch_layout

PAD = 0


def make_rows(lengths: list[int], seed: int = 0, prompt: int = 3) -> list[dict[str, list[int]]]:
    """Rows with random tokens whose first `prompt` labels are masked, like rendered conversations."""
    rng = random.Random(seed)
    rows = []
    for length in lengths:
        ids = [rng.randrange(10, 1000) for _ in range(length)]
        rows.append({"input_ids": ids, "labels": [IGNORE_INDEX] * min(prompt, length) + ids[prompt:]})
    return rows


def split_examples(packed: dict[str, list[int]]) -> list[list[int]]:
    """The examples of a packed row, cut where its position ids restart."""
    examples: list[list[int]] = []
    for token, position in zip(packed["input_ids"], packed["position_ids"], strict=True):
        if position == 0:
            examples.append([])
        examples[-1].append(token)
    return examples


def reference_best_fit(lengths: list[int], cutoff: int) -> list[list[int]]:
    """The straightforward best-fit-decreasing (scan every bin per row) that pack_rows must match."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    bins: list[list[int]] = []
    space: list[int] = []
    for index in order:
        fits = [b for b in range(len(bins)) if space[b] >= lengths[index]]
        if not fits:
            bins.append([index])
            space.append(cutoff - lengths[index])
            continue
        best = min(fits, key=lambda b: space[b])
        bins[best].append(index)
        space[best] -= lengths[index]
    return bins


# ---------------------------------------------------------------- pack_rows


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pack_rows_keeps_every_token_and_respects_cutoff(seed: int):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 64) for _ in range(300)]
    rows = make_rows(lengths, seed)
    packed = pack_rows(rows, 64)
    assert all(len(row["input_ids"]) <= 64 for row in packed)
    assert all(len(row["labels"]) == len(row["position_ids"]) == len(row["input_ids"]) for row in packed)
    examples = [tuple(example) for row in packed for example in split_examples(row)]
    assert sorted(examples) == sorted(tuple(row["input_ids"]) for row in rows)
    # Labels: each example's first one is masked (never learnt from the previous example), the rest unchanged.
    by_ids = {tuple(row["input_ids"]): row["labels"] for row in rows}
    for row in packed:
        start = 0
        for example in split_examples(row):
            labels = row["labels"][start:start + len(example)]
            assert labels == [IGNORE_INDEX] + by_ids[tuple(example)][1:]
            start += len(example)


def test_pack_rows_matches_plain_best_fit_decreasing():
    rng = random.Random(7)
    lengths = [rng.randint(1, 256) for _ in range(500)]
    rows = make_rows(lengths)
    packed = pack_rows(rows, 256)
    expected = reference_best_fit(lengths, 256)
    assert [[len(example) for example in split_examples(row)] for row in packed] == \
        [[lengths[i] for i in members] for members in expected]
    assert len(packed) <= -(-sum(lengths) // 256) * 1.05  # nearly full rows


def test_pack_rows_gives_an_overlong_row_its_own_sequence():
    rows = make_rows([10, 80, 20])
    packed = pack_rows(rows, 64)
    assert [len(row["input_ids"]) for row in packed] == [80, 30]


# ---------------------------------------------------------------- collator


def test_padded_batch_shapes():
    batch = SequenceCollator(pad_token_id=PAD)(make_rows([5, 11]))
    assert set(batch) == {"input_ids", "labels", "attention_mask"}
    assert batch["input_ids"].shape == (2, 16)  # the longest row, rounded up to a multiple of 8
    assert batch["attention_mask"].sum().item() == 16
    assert (batch["labels"][0, 5:] == IGNORE_INDEX).all()


def test_packed_rows_get_position_ids_and_no_mask():
    packed = pack_rows(make_rows([5, 7, 9]), 16)
    batch = SequenceCollator(pad_token_id=PAD)(packed)
    assert set(batch) == {"input_ids", "labels", "position_ids"}
    assert batch["input_ids"].shape == (2, 16)
    assert batch["position_ids"][0].tolist() == list(range(9)) + list(range(7))  # best fit: 9 + 7 fill a row
    assert batch["position_ids"][1].tolist() == list(range(5)) + list(range(11))  # padding: one more segment


def test_padding_free_batch_is_one_row_without_padding():
    rows = make_rows([5, 11, 3])
    batch = SequenceCollator(pad_token_id=PAD, padding_free=True)(rows)
    assert set(batch) == {"input_ids", "labels", "position_ids"}
    assert batch["input_ids"].shape == (1, 19)
    assert batch["position_ids"][0].tolist() == list(range(5)) + list(range(11)) + list(range(3))
    assert batch["input_ids"][0].tolist() == sum((row["input_ids"] for row in rows), [])
    starts = [0, 5, 16]
    assert all(batch["labels"][0, start].item() == IGNORE_INDEX for start in starts)


def test_padding_free_keeps_packed_rows_apart():
    packed = pack_rows(make_rows([5, 7, 9]), 16)
    batch = SequenceCollator(pad_token_id=PAD, padding_free=True)(packed)
    assert batch["input_ids"].shape == (1, 21)
    assert (batch["position_ids"][0] == 0).sum().item() == 3


def test_padding_free_batch_can_carry_flash_attention_boundaries():
    batch = SequenceCollator(pad_token_id=PAD, padding_free=True, varlen_kwargs=True)(make_rows([5, 11, 3]))
    assert batch["cu_seq_lens_q"].tolist() == batch["cu_seq_lens_k"].tolist() == [0, 5, 16, 19]
    assert batch["cu_seq_lens_q"].dtype == torch.int32
    assert batch["max_length_q"] == batch["max_length_k"] == 11
    assert "cu_seq_lens_q" not in SequenceCollator(pad_token_id=PAD, varlen_kwargs=True)(make_rows([5, 11]))


def test_selected_logits_are_the_positions_with_a_next_label():
    batch = SequenceCollator(pad_token_id=PAD, select_logits=True)(make_rows([6, 9]))
    keep, targets = batch["logits_to_keep"], batch["shift_labels"]
    assert keep.dtype == torch.bool and keep.shape == batch["labels"].shape
    assert targets.tolist() == batch["labels"][:, 1:][keep[:, :-1]].tolist()
    assert (targets != IGNORE_INDEX).all() and len(targets) == (6 - 3) + (9 - 3)
    assert not keep[:, -1].any()


def test_loss_positions_of_a_batch_without_labels_is_empty():
    labels = torch.full((1, 4), IGNORE_INDEX)
    out = loss_positions(labels)
    assert out["shift_labels"].numel() == 0 and not out["logits_to_keep"].any()


# ---------------------------------------------------------------- the model sees the same examples


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> tuple[Any, Any]:
    """The tiny model with a LoRA adapter (loaded for training: no KV cache), and its tokenizer."""
    config = config_from_dict({"model_name_or_path": str(tiny_model_dir), "lora_rank": 4})
    tokenizer = load_tokenizer(config.model)
    torch.manual_seed(0)
    model = load_model(tokenizer, config.model, config.finetuning, is_trainable=True)
    with torch.no_grad():  # LoRA starts as a no-op: give B weights so adapter gradients flow everywhere
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    return model, tokenizer


def set_attention(model: Any, name: str) -> None:
    if name == boosters.SEGMENT_ATTENTION:
        boosters.base_model(model).set_attn_implementation("sdpa")
        assert boosters.enable_segment_attention(model)
    else:
        boosters.base_model(model).set_attn_implementation(name)


def separate_logits(model: Any, rows: list[dict[str, list[int]]]) -> list[torch.Tensor]:
    with torch.no_grad():
        return [model(input_ids=torch.tensor([row["input_ids"]])).logits[0] for row in rows]


@pytest.mark.parametrize("attention", ["sdpa", "eager", boosters.SEGMENT_ATTENTION])
def test_padding_free_logits_equal_separate_examples(tiny: tuple[Any, Any], attention: str):
    model, _ = tiny
    set_attention(model, attention)
    rows = make_rows([7, 19, 4, 12], seed=3)
    reference = separate_logits(model, rows)
    for collator in (SequenceCollator(PAD), SequenceCollator(PAD, padding_free=True)):
        batch = collator(rows)
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        with torch.no_grad():
            logits = model(**inputs).logits
        if collator.padding_free:
            pieces = torch.split(logits[0], [len(row["input_ids"]) for row in rows])
        else:
            pieces = [logits[i, :len(row["input_ids"])] for i, row in enumerate(rows)]
        for got, want in zip(pieces, reference, strict=True):
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("attention", ["sdpa", "eager", boosters.SEGMENT_ATTENTION])
def test_packed_examples_never_attend_to_each_other(tiny: tuple[Any, Any], attention: str):
    model, _ = tiny
    set_attention(model, attention)
    rows = make_rows([9, 14, 6], seed=4)
    batch = SequenceCollator(PAD, padding_free=True)(rows)
    changed = dict(batch)
    changed["input_ids"] = batch["input_ids"].clone()
    changed["input_ids"][0, :9] = torch.randint(10, 1000, (9,))  # a different first example
    with torch.no_grad():
        before = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        after = model(input_ids=changed["input_ids"], position_ids=changed["position_ids"]).logits[0]
    assert not torch.allclose(before[:9], after[:9])
    torch.testing.assert_close(before[9:], after[9:], atol=1e-5, rtol=1e-5)


def loss_and_grads(model: Any, batch: dict[str, torch.Tensor]) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    items = (batch["shift_labels"] if "shift_labels" in batch else batch["labels"][:, 1:]).ne(IGNORE_INDEX).sum()
    loss = model(**batch, num_items_in_batch=items).loss
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.item(), grads


def test_every_layout_gives_the_same_loss_and_gradients(tiny: tuple[Any, Any]):
    model, _ = tiny
    set_attention(model, "sdpa")
    rows = make_rows([13, 30, 8, 21, 17, 5], seed=5)
    want_loss, want_grads = loss_and_grads(model, SequenceCollator(PAD)(rows))
    layouts = [(SequenceCollator(PAD, select_logits=True), "sdpa"),
               (SequenceCollator(PAD, padding_free=True), "sdpa"),
               (SequenceCollator(PAD, padding_free=True, select_logits=True), boosters.SEGMENT_ATTENTION)]
    for collator, attention in layouts:
        set_attention(model, attention)
        loss, grads = loss_and_grads(model, collator(rows))
        assert loss == pytest.approx(want_loss, rel=1e-5)
        assert grads.keys() == want_grads.keys() and grads
        for name, grad in grads.items():
            torch.testing.assert_close(grad, want_grads[name], atol=1e-5, rtol=1e-4)
    # Packing changes which examples share a row, not what each contributes.
    packed = pack_rows(rows, 48)
    loss, grads = loss_and_grads(model, SequenceCollator(PAD, padding_free=True, select_logits=True)(packed))
    assert loss == pytest.approx(want_loss, rel=1e-5)


def test_segment_attention_leaves_single_examples_and_decoding_to_sdpa():
    module = torch.nn.Module()
    query, key = torch.zeros(2, 4, 6, 8), torch.zeros(2, 2, 6, 8)
    assert boosters.packed_segments(module, query, key, position_ids=torch.arange(6).expand(2, -1)) is None
    assert boosters.packed_segments(module, query, key) is None
    packed = torch.tensor([[0, 1, 2, 0, 1, 2], [0, 1, 2, 3, 4, 0]])
    assert boosters.packed_segments(module, query, key, position_ids=packed) == [[(0, 3), (3, 6)], [(0, 5), (5, 6)]]
    decoding = torch.zeros(2, 4, 1, 8)
    assert boosters.packed_segments(module, decoding, key, position_ids=torch.tensor([[5], [5]])) is None
    module.sliding_window = 4
    assert boosters.packed_segments(module, query, key, position_ids=packed) is None


# ---------------------------------------------------------------- the engine's choices


def run_config(model_dir: Path, **overrides: Any) -> Any:
    return config_from_dict({"model_name_or_path": str(model_dir), "output_dir": "unused", **overrides})


def test_neat_packing_turns_packing_on(tiny_model_dir: Path):
    assert run_config(tiny_model_dir, neat_packing=True).data.packing is True
    assert run_config(tiny_model_dir, neat_packing=True, packing=False).data.packing is True
    assert run_config(tiny_model_dir).data.packing is None


def test_default_cpu_layout_is_padding_free_with_selected_logits(tiny_model_dir: Path):
    config = run_config(tiny_model_dir, use_cpu=True)
    model = load_model(load_tokenizer(config.model), config.model, config.finetuning, is_trainable=True)
    assert batch_layout(config, model) == {"padding_free": True, "select_logits": True, "varlen_kwargs": False}
    assert boosters.base_model(model).config._attn_implementation == boosters.SEGMENT_ATTENTION


def test_layout_follows_the_settings(tiny_model_dir: Path):
    eager = run_config(tiny_model_dir, flash_attn="disabled")
    model = load_model(load_tokenizer(eager.model), eager.model, eager.finetuning, is_trainable=True)
    assert batch_layout(eager, model)["padding_free"] is False  # eager attention would cost row × row
    forced = run_config(tiny_model_dir, flash_attn="disabled", padding_free=True)
    assert batch_layout(forced, model)["padding_free"] is True
    smoothed = run_config(tiny_model_dir, padding_free=False, label_smoothing_factor=0.1)
    assert batch_layout(smoothed, model) == {"padding_free": False, "select_logits": False, "varlen_kwargs": False}
