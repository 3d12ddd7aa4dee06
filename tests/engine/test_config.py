"""Config parsing, overrides, unknown keys, types, ranges and combinations (all torch-free)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import field_hints, load_config, save_config
from engine.config.finetuning import FinetuningArguments
from engine.config.loader import read_yaml
from engine.errors import ConfigError, StudioError
from engine.validation import validate_config

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "configs"
ROOT = Path(__file__).resolve().parent.parent.parent


def error_of(overrides: list[str] | dict, path: str | None = None) -> StudioError:
    with pytest.raises(StudioError) as info:
        validate_config(load_config(path, overrides))
    return info.value


def test_llamafactory_yaml_loads_unchanged():
    config = validate_config(load_config(FIXTURES / "llamafactory_lora_sft.yaml"))
    assert config.model.model_name_or_path == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert config.training.learning_rate == pytest.approx(1e-4)
    assert config.training.eval_strategy == "steps"  # translated from evaluation_strategy
    assert config.training.warmup_ratio == pytest.approx(0.1)
    assert config.data.dataset == "identity,alpaca_en_demo"
    assert config.training.ddp_timeout == 180000000


@pytest.mark.parametrize("path", sorted((ROOT / "examples").rglob("*.yaml")), ids=lambda p: p.name)
def test_every_example_yaml_validates(path: Path):
    validate_config(load_config(path))


def test_overrides_win_and_are_typed():
    config = load_config(FIXTURES / "llamafactory_lora_sft.yaml",
                         ["learning_rate=1e-3", "num_train_epochs=2", "packing=true", "dataset=[identity, c4_demo]"])
    assert config.training.learning_rate == pytest.approx(1e-3)
    assert config.training.num_train_epochs == 2.0
    assert config.data.packing is True
    assert config.data.dataset == "identity,c4_demo"


def test_yaml_scientific_notation_without_dot_is_a_number(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 1e-4\ndataset: identity\n")
    assert load_config(path).training.learning_rate == pytest.approx(1e-4)


def test_unknown_key_names_the_nearest_valid_one(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rat: 0.1\n")
    err = error_of([], str(path))
    assert err.key == "unknown_key"
    assert "learning_rat" in str(err) and "learning_rate" in str(err)


def test_unknown_override_key_is_named_as_coming_from_the_command_line():
    err = error_of(["lora_rnak=4"])
    assert err.key == "unknown_key" and "command line" in str(err) and "lora_rank" in str(err)


def test_bad_override_syntax():
    assert error_of(["learning_rate"]).key == "bad_override"


@pytest.mark.parametrize(("overrides", "key"), [
    (["learning_rate=-1"], "too_small"),
    (["learning_rate=0"], "too_small"),
    (["per_device_train_batch_size=0"], "too_small"),
    (["gradient_accumulation_steps=0"], "too_small"),
    (["cutoff_len=0"], "too_small"),
    (["lora_rank=0"], "too_small"),
    (["max_steps=-2"], "too_small"),
    (["max_steps=0"], "zero_steps"),
    (["num_train_epochs=three"], "wrong_type"),
    (["per_device_train_batch_size=1.5"], "wrong_type"),
    (["stage=sftt"], "bad_choice"),
    (["finetuning_type=qlora"], "bad_choice"),
    (["quantization_bit=3"], "bad_choice"),
    (["val_size=1.5"], "val_size_fraction"),
    (["quantization_bit=4", "finetuning_type=full"], "quantization_needs_adapter"),
    (["bf16=true", "fp16=true"], "bf16_and_fp16"),
    (["eval_strategy=steps"], "eval_without_data"),
    (["template=not_a_template"], "unknown_template"),
    (["model_name_or_path=./no/such/folder"], "model_path_missing"),
    (["dataset=no_such_dataset"], "dataset_not_registered"),
])
def test_bad_values_give_their_documented_error(overrides: list[str], key: str):
    err = error_of([*overrides, *([] if any(o.startswith("dataset=") for o in overrides) else ["dataset=identity"])])
    assert err.key == key
    assert "error." not in str(err), "every error key needs an English text in locales/en.yaml"


def test_no_dataset_for_training():
    assert error_of([]).key == "no_dataset"


def test_yaml_syntax_error_names_the_line(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("dataset: identity\nlearning_rate: [1e-4\nstage: sft\n")
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert info.value.key == "yaml_syntax" and "line" in str(info.value)


def test_missing_config_and_folder(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_yaml(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError) as info:
        read_yaml(tmp_path)
    assert info.value.key == "config_is_folder"


def test_top_level_list_is_refused(tmp_path: Path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert info.value.key == "not_a_mapping"


def test_output_dir_that_is_a_file(tmp_path: Path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert error_of(["dataset=identity", f"output_dir={target}"]).key == "output_dir_is_file"


def test_fields_carry_ui_hints():
    hints = field_hints(FinetuningArguments, "lora_rank")
    assert hints["default"] == 8 and hints["min"] == 1 and hints["doc"]
    assert field_hints(FinetuningArguments, "stage")["choices"][:2] == ["pt", "sft"]


def test_saved_config_round_trips_without_secrets(tmp_path: Path):
    config = load_config(None, ["dataset=identity", "hf_hub_token=secret-token", "lora_rank=4"])
    save_config(config, tmp_path / "config.yaml")
    text = (tmp_path / "config.yaml").read_text()
    assert "secret-token" not in text and "hf_hub_token" not in text
    again = load_config(tmp_path / "config.yaml")
    assert again.finetuning.lora_rank == 4 and again.to_dict(include_secrets=False) == config.to_dict(
        include_secrets=False)


def test_config_reference_is_current():
    from engine.config.reference import render_reference

    assert (ROOT / "docs" / "config.md").read_text(encoding="utf-8") == render_reference(), (
        "docs/config.md is stale: run `python scripts/config_reference.py`")
