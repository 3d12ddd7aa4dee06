"""A setting named in a message: its key on the command line, its label (the key as a hint) in the studio."""

from __future__ import annotations

import pytest

from engine.config import load_config
from engine.errors import StudioError
from studio.markup import html_error, md_error


def error_of(*overrides: str) -> StudioError:
    with pytest.raises(StudioError) as info:
        load_config(None, ["dataset=identity", *overrides])
    return info.value


def test_an_empty_number_says_it_is_empty_in_the_users_words():
    err = error_of("learning_rate=null")
    assert err.key == "value_missing"
    assert err.message() == "learning_rate is empty. Enter a number."  # the command line: the key first
    assert md_error(err, "en") == "Learning rate (learning\\_rate) is empty. Enter a number."
    assert html_error(err, "zh") == "学习率（learning_rate） 为空。请输入数字。"


def test_wrong_values_name_the_setting_by_its_label_in_the_studio():
    err = error_of("num_train_epochs=three")
    assert err.message().startswith("num_train_epochs must be a number")
    assert html_error(err, "en").startswith("Epochs (num_train_epochs) must be a number")
    assert html_error(err, "ja").startswith("設定「エポック数（num_train_epochs）」は")
