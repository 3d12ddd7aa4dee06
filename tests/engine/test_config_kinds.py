"""Every key a LLaMA-Factory config may hold is implemented, passed to transformers, or refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import load_config, save_config
from engine.config.declined import DECLINED
from engine.config.loader import ALIASES, KEYS, PASSTHROUGH_KEYS
from engine.config.trainer_fields import SEQ2SEQ_ONLY, TRAINER_FIELDS
from engine.errors import ConfigError, StudioError

ROOT = Path(__file__).resolve().parents[2]
LF_KEYS = [line for line in (ROOT / "tests/fixtures/llamafactory_0_9_5_keys.txt").read_text().splitlines()
           if line and not line.startswith("#")]


def test_the_trainer_table_matches_the_installed_transformers():
    from engine.config.trainer_table import render_trainer_fields

    path = ROOT / "engine/config/trainer_fields.py"
    assert path.read_text(encoding="utf-8") == render_trainer_fields(), (
        "engine/config/trainer_fields.py is stale: run `python scripts/trainer_fields.py`")


@pytest.mark.parametrize("key", sorted({*LF_KEYS, *TRAINER_FIELDS}))
def test_every_llamafactory_and_transformers_key_has_a_kind(key: str):
    assert key in KEYS or key in ALIASES or key in PASSTHROUGH_KEYS or key in DECLINED, key


def test_the_three_kinds_do_not_overlap():
    assert not PASSTHROUGH_KEYS & KEYS.keys()
    assert not DECLINED.keys() & KEYS.keys()
    assert not DECLINED.keys() & PASSTHROUGH_KEYS
    assert set(SEQ2SEQ_ONLY) - KEYS.keys() <= DECLINED.keys()  # Seq2Seq-only arguments no Trainer here takes


def test_transformers_arguments_go_to_the_trainer_unchanged(tmp_path):
    config = load_config(None, {"logging_strategy": "epoch", "eval_accumulation_steps": "4", "hub_private_repo": True,
                                "gradient_checkpointing_kwargs": {"use_reentrant": False}, "torch_compile_mode": None})
    assert config.passthrough == {"logging_strategy": "epoch", "eval_accumulation_steps": 4, "hub_private_repo": True,
                                  "gradient_checkpointing_kwargs": {"use_reentrant": False}, "torch_compile_mode": None}
    save_config(config, tmp_path / "config.yaml")  # the run folder's config keeps them, and reads back the same
    assert load_config(tmp_path / "config.yaml").passthrough == config.passthrough

    from engine.train.trainer_setup import build_training_arguments

    args = build_training_arguments(load_config(None, {"logging_strategy": "epoch", "output_dir": str(tmp_path),
                                                       "eval_accumulation_steps": 4}))
    assert str(args.logging_strategy.value) == "epoch" and args.eval_accumulation_steps == 4


def test_a_wrong_type_for_a_transformers_argument_names_the_key():
    with pytest.raises(ConfigError) as info:
        load_config(None, {"eval_accumulation_steps": "many"})
    assert info.value.key == "wrong_type" and "eval_accumulation_steps" in info.value.message()


def test_hub_token_is_a_secret():
    config = load_config(None, {"hub_token": "hf_secret"})
    assert config.passthrough["hub_token"] == "hf_secret"
    assert "hub_token" not in config.to_dict(include_secrets=False)


@pytest.mark.parametrize("key", sorted(DECLINED))
def test_a_feature_not_built_is_accepted_off_and_refused_on(key: str):
    off = DECLINED[key].off
    assert load_config(None, {key: off}).passthrough == {}  # LLaMA-Factory's default asks for nothing
    on = {bool: (not off), int: 7, float: 0.5, str: "other"}.get(type(off), "something")
    with pytest.raises(ConfigError) as info:
        load_config(None, {key: on})
    message = info.value.message()
    assert info.value.key == "feature_not_built" and key in message and "Unknown" not in message


def test_the_messages_name_the_feature_and_the_alternative():
    with pytest.raises(ConfigError) as info:
        load_config(None, {"master_addr": "10.0.0.1"})
    assert "Ray Train" in info.value.message() and "master_port" in info.value.message()
    assert load_config(None, {"ray_num_workers": 4}).training.ray_num_workers == 4  # Ray training is built
    with pytest.raises(ConfigError) as info:
        load_config(None, {"mixture_of_depths": "convert"})
    assert "transformers 5" in info.value.message()


def test_unknown_keys_still_name_the_nearest_one():
    with pytest.raises(ConfigError) as info:
        load_config(None, {"logging_stratgy": "steps"})
    assert info.value.key == "unknown_key" and "logging_strategy" in info.value.message()


def test_a_predict_only_config_trains_nothing():
    config = load_config(None, {"do_predict": True, "eval_dataset": "identity"})
    assert config.training.do_train is False
    assert load_config(None, {"do_predict": True, "do_train": True}).training.do_train is True
    assert load_config(None, {}).training.do_train is True


def test_kto_with_batch_one_runs_as_pairs():
    from engine.train.kto import kto_batch_layout
    from engine.validation import validate_config

    config = load_config(None, {"stage": "kto", "dataset": "kto_en_demo", "per_device_train_batch_size": 1,
                                "gradient_accumulation_steps": 8})
    validate_config(config)
    assert kto_batch_layout(config) == {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 4}
    config.training.gradient_accumulation_steps = 3
    assert kto_batch_layout(config) == {"per_device_train_batch_size": 3, "gradient_accumulation_steps": 1}
    config.training.gradient_accumulation_steps = 1
    with pytest.raises(StudioError, match="at least 2 examples"):
        validate_config(config)


def test_the_public_demo_refuses_keys_off_its_allow_list_of_every_kind():
    from studio.demo_keys import canonical_keys

    for key, value in (("logging_strategy", "epoch"), ("master_port", None), ("hub_token", "x")):
        with pytest.raises(StudioError) as info:
            canonical_keys({key: value})
        assert info.value.key == "demo_key_not_allowed"


def test_dpo_only_options_are_refused_elsewhere():
    from engine.validation import validate_config

    for extra in ({"pref_bco_weight": 0.5}, {"ld_alpha": 0.5}):
        validate_config(load_config(None, {"stage": "dpo", "dataset": "dpo_en_demo", **extra}))
        for other in ({"stage": "kto", "dataset": "kto_en_demo"},
                      {"stage": "dpo", "dataset": "dpo_en_demo", "pref_loss": "orpo"}):
            with pytest.raises(ConfigError) as info:
                validate_config(load_config(None, {**other, **extra}))
            assert info.value.key == "pref_option_needs_dpo"
