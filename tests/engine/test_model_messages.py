"""Model errors name a setting as the person reading them knows it: the config key on the command line, the
studio's label (the key as a hint) in the studio."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from engine.config import ModelArguments
from engine.errors import ModelError
from engine.model.adapters import setup_finetuning
from engine.model.loader import resolve_model_folder
from studio.markup import html_error


def test_no_model_names_the_model_path_box_in_the_studio():
    with pytest.raises(ModelError) as info:
        resolve_model_folder(ModelArguments(model_name_or_path=" "))
    err = info.value
    assert err.key == "no_model" and "Set model_name_or_path to" in err.message("en")
    assert "Set Model path (model_name_or_path) to" in html_error(err, "en")
    assert "模型路径（model_name_or_path）" in html_error(err, "zh")


def test_a_bad_choice_names_the_setting_by_its_label_in_the_studio():
    with pytest.raises(ModelError) as info:
        setup_finetuning(None, SimpleNamespace(adapter_name_or_path=None), SimpleNamespace(finetuning_type="nope"),
                         is_trainable=True)
    err = info.value
    assert err.key == "bad_choice" and err.message("en").startswith("finetuning_type cannot be 'nope'")
    assert html_error(err, "en").startswith("Method (finetuning_type) cannot be 'nope'")


def test_hub_offline_names_the_model_path_box_and_the_variable_only_as_a_hint():
    from huggingface_hub import constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    from engine.model.load_errors import _hub_error

    if not constants.is_offline_mode():
        pytest.skip("HF_HUB_OFFLINE is not set")
    err = _hub_error([OfflineModeIsEnabled("offline")], "org/not-here", "main")
    assert err is not None and err.key == "model_hub_offline"
    studio = html_error(err, "en")
    assert "Set Model path (model_name_or_path) to a local model folder" in studio and "(HF_HUB_OFFLINE=1)" in studio
    assert "Set model_name_or_path to" in err.message("en")
