"""Images and video on the offline vision demo (a tiny Qwen2-VL): build, tokens, tensors, freezing, training,
the learning check (held-out accuracy on colour squares), chat with media, export, and what is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from engine.config import config_from_dict
from engine.errors import ConfigError, StudioError
from tests.engine.media_helpers import (
    DATA,
    accuracy,
    export_merged,
    lora_targets,
    media_backend,
    media_plugin,
    ranking_pairs,
    sha,
    train_media,
)


def _plugin(model_dir: Path):
    return media_plugin(model_dir, "qwen2_vl")


def _train(model_dir: Path, out: Path, **extra) -> Path:
    return train_media(model_dir, out, **{"template": "qwen2_vl", "dataset": "mllm_colors", "max_steps": 100,
                                          "logging_steps": 10, "freeze_multi_modal_projector": False, **extra})


@pytest.fixture(scope="module")
def colour_run(vision_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LoRA (language model and projector) trained once on mllm_colors."""
    return _train(vision_model_dir, tmp_path_factory.mktemp("runs") / "colours")


def _accuracy(backend, rows: list[dict]) -> float:
    return accuracy(backend, rows, "images")


def _backend(**values):
    return media_backend(**{"template": "qwen2_vl", **values})


# ---------------------------------------------------------------- the model


def test_vision_demo_is_a_deterministic_qwen2_vl(vision_model_dir: Path, tmp_path: Path):
    from engine.multimodal.demo_vision import build_vision_demo

    again = build_vision_demo(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "preprocessor_config.json"):
        assert sha(again / name) == sha(vision_model_dir / name), name
    config = json.loads((vision_model_dir / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == "qwen2_vl"
    assert json.loads((vision_model_dir / "studio_model.json").read_text(encoding="utf-8"))["template"] == "qwen2_vl"


def test_placeholders_expand_to_one_token_per_merged_block(vision_model_dir: Path):
    from engine.data.media import PLACEHOLDERS

    plugin, tokenizer = _plugin(vision_model_dir)
    loaded = plugin.load({"images": [Image.new("RGB", (56, 56), "red"), Image.new("RGB", (112, 84), "blue")]})
    counts = plugin.token_counts(loaded)
    assert counts == {"images": [4, 12], "videos": []}  # 28x28 pixels per token: 2x2 and 4x3
    messages = plugin.expand([{"role": "user", "content": "<image>a<image>b"}], counts, PLACEHOLDERS)
    text = messages[0]["content"]
    assert text == ("<|vision_start|>" + "<|image_pad|>" * 4 + "<|vision_end|>a"
                    "<|vision_start|>" + "<|image_pad|>" * 12 + "<|vision_end|>b")
    features = plugin.features([loaded])
    assert features["image_grid_thw"].tolist() == [[1, 4, 4], [1, 6, 8]]  # (time, height, width) in 14-px patches
    assert features["pixel_values"].shape[0] == 16 + 48  # one row per 14-px patch
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    assert int((plugin.token_type_ids(ids) == 1).sum()) == 16


def test_video_frames_pair_into_temporal_patches(vision_model_dir: Path):
    import numpy as np

    plugin, _ = _plugin(vision_model_dir)
    red, blue = Image.new("RGB", (56, 56), "red"), Image.new("RGB", (56, 56), "blue")
    still, _ = plugin._video_patches([red, red])
    image = plugin.processor(images=[red], return_tensors="np")["pixel_values"]
    assert np.allclose(still, image)  # a still video is the image (which the processor repeats over time)
    moving, grid = plugin._video_patches([red, blue, blue, red])
    assert grid == [2, 4, 4]
    rows = moving.reshape(2, 16, 3, 2, 14, 14)  # (time patch, position, channel, frame in pair, patch)
    red_value, blue_value = rows[0, 0, 0, 0, 0, 0], rows[0, 0, 0, 1, 0, 0]
    assert red_value > blue_value  # the red channel: frame 0 red, frame 1 blue
    assert rows[1, 0, 0, 0, 0, 0] == blue_value and rows[1, 0, 0, 1, 0, 0] == red_value


def test_lora_targets_only_the_parts_that_train(vision_model_dir: Path):
    from transformers import AutoModelForImageTextToText

    from engine.model.methods.weights import linear_targets
    from engine.multimodal.parts import frozen_paths

    model = AutoModelForImageTextToText.from_pretrained(vision_model_dir)
    targets, everything = lora_targets(model)
    assert targets and all(".language_model." in name for name in targets)
    assert any(".visual.blocks." in n for n in everything) and any(".visual.merger." in n for n in everything)
    assert all("." in name for name in everything)  # full names: a short `0` would also match whole blocks
    default = config_from_dict({"model_name_or_path": "x"}).finetuning
    only_q = linear_targets(model, "q_proj", "lora_target_not_found", frozen=frozen_paths(model, default))
    assert only_q and all(name.endswith(".q_proj") for name in only_q)


def test_full_tuning_keeps_the_frozen_parts_fixed(vision_model_dir: Path):
    from engine.model.loader import load_model, load_tokenizer

    config = config_from_dict({"model_name_or_path": str(vision_model_dir), "template": "qwen2_vl",
                               "finetuning_type": "full", "freeze_language_model": True,
                               "freeze_multi_modal_projector": False})
    model = load_model(load_tokenizer(config.model), config.model, config.finetuning, is_trainable=True)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".visual.merger." in name for name in trainable)


# ---------------------------------------------------------------- training and the learning check


@pytest.mark.slow
def test_lora_learns_colours_from_pixels(vision_model_dir: Path, colour_run: Path):
    """Held-out accuracy on squares of four colours: the base model never answers right, the adapter nearly always.
    The answer is only in the pixels (same question every row, colours balanced and shuffled)."""
    rows = json.loads((DATA / "mllm_colors_eval.json").read_text(encoding="utf-8"))
    before = _accuracy(_backend(model_name_or_path=str(vision_model_dir)), rows)
    after = _accuracy(_backend(model_name_or_path=str(vision_model_dir),
                               adapter_name_or_path=str(colour_run)), rows)
    print(f"held-out accuracy on {len(rows)} squares: before {before:.2f}, after {after:.2f}")
    assert before <= 0.4 < 0.9 <= after
    log = [json.loads(line) for line in (colour_run / "trainer_log.jsonl").read_text().splitlines()]
    losses = [entry["loss"] for entry in log if "loss" in entry]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 / 4


@pytest.mark.slow
def test_video_dataset_trains(vision_model_dir: Path, tmp_path: Path):
    out = _train(vision_model_dir, tmp_path / "video", dataset="mllm_video_demo", max_steps=2,
                 per_device_train_batch_size=2, cutoff_len=1024)
    assert (out / "adapter_model.safetensors").is_file()


def test_qlora_trains_on_images(vision_model_dir: Path, tmp_path: Path):
    pytest.importorskip("bitsandbytes")
    out = _train(vision_model_dir, tmp_path / "qlora", dataset="mllm_demo", quantization_bit=4, max_steps=2,
                 per_device_train_batch_size=2, cutoff_len=512)
    assert (out / "adapter_model.safetensors").is_file()


def test_text_rows_train_on_a_vision_model(vision_model_dir: Path, tmp_path: Path):
    out = _train(vision_model_dir, tmp_path / "text", dataset="identity", max_steps=2)
    assert (out / "adapter_model.safetensors").is_file()


# ---------------------------------------------------------------- chat and export


def test_chat_media_mistakes_are_named(vision_model_dir: Path, tiny_model_dir: Path):
    image = Image.new("RGB", (56, 56), "red")
    vision = _backend(model_name_or_path=str(vision_model_dir))
    with pytest.raises(StudioError, match="placeholder"):
        vision.generate([{"role": "user", "content": "no placeholder"}], media={"images": [image]})
    with pytest.raises(StudioError, match="audio"):
        vision.generate([{"role": "user", "content": "<audio>hi"}], media={"audios": [b"RIFF"]})
    text = _backend(model_name_or_path=str(tiny_model_dir), template="chatml")
    assert text.modalities == frozenset()
    with pytest.raises(StudioError, match="text only"):
        text.generate([{"role": "user", "content": "<image>hi"}], media={"images": [image]})
    reply = vision.generate([{"role": "user", "content": "<image>What colour?"}], media={"images": [image]},
                            max_new_tokens=3)
    assert reply.prompt_tokens > 4  # the image's 4 tokens and the text


@pytest.mark.slow
def test_predict_answers_from_the_images(vision_model_dir: Path, colour_run: Path, tmp_path: Path):
    """Evaluate & Predict on a media dataset: each row's own image reaches the model (the adapter names colours)."""
    from engine.eval.predict import run_predict

    config = config_from_dict({"model_name_or_path": str(vision_model_dir), "template": "qwen2_vl",
                               "adapter_name_or_path": str(colour_run), "finetuning_type": "lora",
                               "eval_dataset": "mllm_colors_eval", "dataset_dir": str(DATA), "max_new_tokens": 4,
                               "do_sample": False, "max_samples": 8})
    tmp_path.mkdir(exist_ok=True)
    run_predict(config, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "generated_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and "<image>" in rows[0]["prompt"]  # the prompt is shown with its placeholder
    assert sum(row["predict"] == row["label"] for row in rows) >= 6


@pytest.mark.slow
def test_export_merges_a_vision_adapter(vision_model_dir: Path, colour_run: Path, tmp_path: Path):
    export_dir = export_merged(vision_model_dir, colour_run, "qwen2_vl", tmp_path / "merged")
    assert (export_dir / "preprocessor_config.json").is_file()
    rows = json.loads((DATA / "mllm_colors_eval.json").read_text(encoding="utf-8"))[:8]
    merged = _backend(model_name_or_path=str(export_dir), finetuning_type="full")
    assert _accuracy(merged, rows) >= 0.75


def test_what_media_models_cannot_do_yet_is_refused_before_launch(vision_model_dir: Path, tmp_path: Path):
    from engine.validation import validate_config

    base = {"model_name_or_path": str(vision_model_dir), "template": "qwen2_vl", "dataset": "mllm_demo",
            "dataset_dir": str(DATA), "output_dir": str(tmp_path / "x")}
    with pytest.raises(ConfigError, match="sft or dpo"):
        validate_config(config_from_dict({**base, "stage": "kto", "dataset": "kto_en_demo"}))
    with pytest.raises(ConfigError, match="sft or dpo"):
        validate_config(config_from_dict({**base, "stage": "dpo", "pref_loss": "orpo", "dataset": "dpo_en_demo"}))
    with pytest.raises(ConfigError, match="packing"):
        validate_config(config_from_dict({**base, "packing": True}))
    with pytest.raises(ConfigError, match="GGUF"):
        validate_config(config_from_dict({**base, "export_dir": str(tmp_path / "e"), "export_gguf": "f16"}), "export")
    validate_config(config_from_dict(base))  # sft on images is fine


def _colour_pairs(folder: Path) -> Path:
    """A ranking dataset of colour squares: the right colour chosen, another rejected (paths relative to it)."""
    from engine.data.synthetic import COLORS, color_squares

    return ranking_pairs(folder, "colour_pairs", color_squares(folder / "squares", 16, seed=7, relative_to=folder),
                         list(COLORS), "images")


@pytest.mark.slow
def test_dpo_prefers_the_right_colour(vision_model_dir: Path, tmp_path: Path):
    """DPO on image pairs: the media reach both halves of each batch and the reward margin grows."""
    data = _colour_pairs(tmp_path / "data")
    out = _train(vision_model_dir, tmp_path / "dpo", stage="dpo", dataset="colour_pairs", dataset_dir=str(data),
                 max_steps=12, per_device_train_batch_size=4, learning_rate=5e-3, logging_steps=1,
                 pref_beta=0.1)
    log = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    margins = [entry["rewards/margins"] for entry in log if "rewards/margins" in entry]
    assert len(margins) >= 10
    assert sum(margins[-3:]) / 3 > sum(margins[:3]) / 3
    assert (out / "adapter_model.safetensors").is_file()
