"""The Train tab's Images, video and audio group: shown for media templates only, its settings reach the config,
the vision demo's recommended values reach its widgets, and a public demo allows them within the defaults."""

from __future__ import annotations

import pytest

from engine.config import config_from_dict
from engine.errors import StudioError
from engine.model.families import DEMO, DEMO_VISION
from studio.config_builder import build_train_config
from studio.tabs import train_media
from studio.tabs.train import FORM_FIELDS
from studio.tabs.train_media import MEDIA_FIELDS, MEDIA_KEYS, media_visibility
from tests.studio.test_config_builder import form


def test_the_group_shows_for_templates_that_read_media_with_the_settings_of_their_kinds():
    assert media_visibility("qwen2_vl") == {"media": True, "images": True, "videos": True, "audios": False}
    for text_only in ("chatml", "llama3", "", None, "no_such_template"):
        assert not any(media_visibility(text_only).values()), text_only
    assert set(media_visibility(None)) == {"media", *MEDIA_FIELDS}


def test_an_audio_template_shows_the_sampling_rate_and_no_pixel_settings(monkeypatch):
    class Hears:
        modalities = frozenset({"audios"})

    monkeypatch.setattr(train_media, "get_template", lambda name: Hears())
    assert media_visibility("an_audio_template") == {"media": True, "images": False, "videos": False, "audios": True}
    assert MEDIA_FIELDS["audios"] == ("audio_sampling_rate",)


def test_every_media_key_is_a_form_field():
    assert set(MEDIA_KEYS) <= set(FORM_FIELDS)
    assert len(FORM_FIELDS) == len(set(FORM_FIELDS))


def test_media_settings_reach_the_config(studio_home):
    config, _ = build_train_config(form(
        model_name=DEMO_VISION, model_path="demo-vision", template="qwen2_vl", dataset=["mllm_colors"],
        freeze_vision_tower=False, freeze_multi_modal_projector=False, freeze_language_model=True,
        image_max_pixels=200704.0, image_min_pixels=3136.0, video_max_pixels=50176.0, video_min_pixels=784.0,
        video_fps=1.5, video_maxlen=16.0, audio_sampling_rate=16000.0))
    parsed = config_from_dict(config)
    ft, model = parsed.finetuning, parsed.model
    assert not ft.freeze_vision_tower and not ft.freeze_multi_modal_projector and ft.freeze_language_model
    assert (model.image_max_pixels, model.image_min_pixels) == (200704, 3136)
    assert (model.video_max_pixels, model.video_min_pixels, model.video_maxlen) == (50176, 784, 16)
    assert model.video_fps == 1.5 and model.audio_sampling_rate == 16000


def test_picking_the_vision_demo_turns_the_projector_on_and_picks_its_dataset():
    from studio.components import field_default
    from studio.tabs.top import on_model_change, recommended_changes

    form_values = {name: field_default(name) for name in FORM_FIELDS if name in MEDIA_KEYS}
    form_values.update(dataset=["identity"], learning_rate=5e-3)
    path, template, recommended = on_model_change(DEMO_VISION, "huggingface")
    changes = recommended_changes(recommended, form_values)
    assert changes["freeze_multi_modal_projector"] == (True, False)  # the switch is in the form: it is applied
    assert changes["dataset"] == (["identity"], ["mllm_colors"])
    assert path == "demo-vision" and media_visibility(template)["media"]
    assert not media_visibility(on_model_change(DEMO, "huggingface")[1])["media"]


def test_a_public_demo_allows_the_media_settings_up_to_the_defaults():
    from studio.demo_budgets import limit_config
    from studio.demo_keys import ALLOWED, check_allowed, default_of
    from studio.demo_settings import DemoSettings

    assert set(MEDIA_KEYS) <= ALLOWED
    lowered = {"freeze_vision_tower": False, "freeze_multi_modal_projector": False, "freeze_language_model": True,
               "video_fps": 1.0, **{key: default_of(key) // 2 for key in MEDIA_KEYS if key.endswith(("pixels",
                                                                                                       "maxlen"))}}
    check_allowed(lowered)
    settings = DemoSettings()
    limit_config({"model_name_or_path": "demo-vision", "max_steps": 10, **lowered}, "train", settings)
    for key in ("image_max_pixels", "image_min_pixels", "video_max_pixels", "video_min_pixels", "video_maxlen",
                "audio_sampling_rate"):
        with pytest.raises(StudioError) as err:
            limit_config({"model_name_or_path": "demo-vision", "max_steps": 10, key: default_of(key) + 1}, "train",
                         settings)
        assert err.value.key == "demo_value_limit" and key in err.value.message("en")
    with pytest.raises(StudioError) as err:  # a size written as text is read as the engine reads it
        limit_config({"image_min_pixels": "100000000"}, "train", settings)
    assert err.value.key == "demo_value_limit"


def test_saved_settings_bring_the_media_settings_back(studio_home):
    """Save settings / Load settings is how the form gets a whole set of values back: the media keys go with it."""
    from studio.tabs.monitor import load_settings, save_settings

    values = form(freeze_multi_modal_projector=False, image_max_pixels=200704, video_maxlen=16, video_fps=1.0)
    save_settings("vision", "en", *(values[name] for name in FORM_FIELDS))
    loaded = dict(zip(FORM_FIELDS, load_settings("vision", "en"), strict=True))
    assert loaded["freeze_multi_modal_projector"]["value"] is False
    assert loaded["image_max_pixels"]["value"] == 200704 and loaded["video_maxlen"]["value"] == 16
    assert loaded["video_fps"]["value"] == 1.0 and loaded["freeze_vision_tower"]["value"] is True
