"""A beginner's path without traps: number boxes step and check by the config's metadata, choosing a model applies
its recommended values and says so, the model picker is searchable, grouped by family and marks downloads and
memory, advanced settings are folded."""

from __future__ import annotations

from itertools import groupby

import pytest

from engine.config import field_hints
from engine.config.loader import KEYS
from engine.model.families import DEMO, get_model
from studio import capabilities
from studio.components import check_number, number_step
from studio.tabs.top import model_choices, model_note, recommended_changes


@pytest.fixture(scope="module")
def app():
    from studio.app import create_app

    return create_app("en")


def _numbers(app):
    """(widget name, config key, component) of every number box built from a config field."""
    import gradio as gr

    ctx = app.studio_context
    for name, component in ctx.components.items():
        label = ctx.labels.get(name)
        if isinstance(component, gr.Number) and label is not None and label.key.startswith("field."):
            yield name, label.key.removeprefix("field."), component


def _events(app, component, event: str):
    return [fn for fn in app.fns.values() if (component._id, event) in fn.targets]


def test_number_boxes_step_by_the_field_metadata(app):
    seen = set()
    for name, key, component in _numbers(app):
        _, cls, tp = KEYS[key]
        hints = field_hints(cls, key)
        if component.precision == 0:
            assert component.step == 1, name
        else:
            assert hints["step"], f"{key}: a float field shown as a number box needs a step in its metadata"
            assert component.step == hints["step"], name
        seen.add(key)
    assert {"learning_rate", "num_train_epochs", "max_grad_norm", "lora_dropout", "cutoff_len"} <= seen
    learning_rate = next(c for n, _, c in _numbers(app) if n == "learning_rate")
    assert learning_rate.step <= 1e-5  # one ArrowUp from 0.005 stays a learning rate


def test_number_step_without_metadata():
    assert number_step({"step": 0.5, "default": 3.0}, float) == 0.5
    assert number_step({"default": 8}, int) == 1
    assert number_step({"default": 5e-3}, float) == pytest.approx(1e-4)
    assert number_step({"default": None}, float) == 0.01


def test_every_number_box_is_checked_when_left(app):
    for name, _, component in _numbers(app):
        checks = [fn for fn in _events(app, component, "blur") if fn.validator is not None]
        assert checks, f"{name}: no check when the box is left"


def test_check_number_names_what_is_wrong():
    assert check_number("learning_rate", 1e-4, "en") is None
    assert "number" in check_number("learning_rate", None, "en")  # what the browser sends for "abc"
    assert "0 turns it off" in check_number("max_samples", None, "en")
    assert check_number("max_samples", 0, "en") is None  # the box's 0 means "all"
    assert check_number("learning_rate", 0, "en") == "Must be more than 0."
    assert check_number("learning_rate", -1, "en") == "Must be more than 0."
    assert check_number("per_device_train_batch_size", 0, "en") == "Must be at least 1."
    assert check_number("per_device_train_batch_size", 2048, "en") == "Must be at most 1024."
    assert check_number("max_steps", 0, "en") is None and check_number("max_steps", -1, "en") is None
    assert "1" in check_number("per_device_train_batch_size", 0, "zh") and "至少" in check_number(
        "per_device_train_batch_size", 0, "zh")


def test_choosing_a_model_lists_what_changed():
    demo = {key: value for key, value in get_model(DEMO).recommended.items() if key != "warmup_ratio"}
    demo["dataset"] = ["identity"]
    changes = recommended_changes(get_model("Qwen2.5-7B-Instruct").recommended, demo)
    assert changes["learning_rate"] == (5e-3, 1e-4) and changes["num_train_epochs"] == (30, 3.0)
    assert "dataset" not in changes and "finetuning_type" not in changes
    note = model_note("Qwen2.5-7B-Instruct", changes, "en")
    assert "Learning rate 0.005 → 0.0001" in note and "30 → 3" in note and "Qwen2.5-7B-Instruct" in note
    assert "学习率" in model_note("Qwen2.5-7B-Instruct", changes, "zh")
    # back to the demo: its values and its dataset return
    form = {**demo, **{key: new for key, (_, new) in changes.items()}, "dataset": []}
    back = recommended_changes(get_model(DEMO).recommended, form)
    assert back["num_train_epochs"] == (3.0, 30) and back["dataset"] == ([], ["identity"])
    assert "already" in model_note(DEMO, {}, "en")


def test_the_model_note_says_what_the_registry_knows_about_the_model():
    note = model_note("Qwen3-30B-A3B-Thinking-2507", {}, "en")
    assert "About this model" in note and "all 30B parameters must fit in memory" in note
    assert "\\<think\\>" in note or "&lt;think&gt;" in note  # the note's markup is shown, never rendered


def test_the_model_event_applies_the_recommended_values(app):
    ctx = app.studio_context
    (event,) = _events(app, ctx["model_name"], "input")
    assert event.inputs[:4] == [ctx["model_name"], ctx["applied_model"], ctx["hub"], ctx["lang"]]
    names = [block.elem_id for block in event.inputs[4:]]
    current = [block.value for block in event.inputs[4:]]
    outputs = event.fn("Qwen2.5-7B-Instruct", DEMO, "huggingface", "en", *current)
    assert event.outputs[-2:] == [ctx["model_note"], ctx["applied_model"]] and outputs[-1] == "Qwen2.5-7B-Instruct"
    by_name = {block.elem_id: update for block, update in zip(event.outputs[:-2], outputs[:-2], strict=True)}
    assert by_name["model_path"]["value"] == "Qwen/Qwen2.5-7B-Instruct"
    assert by_name["learning_rate"]["value"] == 1e-4 and by_name["num_train_epochs"]["value"] == 3.0
    assert "value" not in by_name["finetuning_type"]  # unchanged values are left alone
    assert "Learning rate" in outputs[-2]
    # the picker opened and closed on the model already applied: the values typed since stay
    same = event.fn("Qwen2.5-7B-Instruct", "Qwen2.5-7B-Instruct", "huggingface", "en", *current)
    assert all("value" not in update for update in same[:-1]) and same[-1] == "Qwen2.5-7B-Instruct"
    assert len(same) == len(event.outputs) and set(names) <= {block.elem_id for block in event.outputs}


def test_model_picker_marks_downloads_and_memory(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(capabilities, "training_memory", lambda: (16.0, False))
    monkeypatch.setattr(capabilities, "model_downloaded", lambda repo, hub="huggingface": repo == "Qwen/Qwen3-0.6B")
    labels = dict((value, label) for label, value in model_choices([DEMO, "Qwen3-0.6B", "Qwen3-1.7B",
                                                                     "Qwen2.5-7B-Instruct"], "en"))
    assert labels[DEMO] == DEMO and labels["Qwen3-0.6B"] == "Qwen · Qwen3-0.6B"
    assert labels["Qwen3-1.7B"] == "Qwen · Qwen3-1.7B — ⬇ download"
    assert labels["Qwen2.5-7B-Instruct"] == "Qwen · Qwen2.5-7B-Instruct — ⬇ download · needs ~33 GB"
    zh = dict((value, label) for label, value in model_choices(["Qwen2.5-7B-Instruct"], "zh"))
    assert "需下载" in zh["Qwen2.5-7B-Instruct"]


def test_model_picker_legend_is_relabelled(app):
    ctx = app.studio_context
    names = list(ctx.labels)
    update = ctx.relabel("zh")[names.index("model_name")]
    assert "需下载" in update["info"] and "GB" in update["info"]
    assert [value for _, value in update["choices"]] == [value for _, value in ctx["model_name"].choices]


def test_model_picker_is_searchable_and_grouped_by_family(app):
    from engine.model.families import CUSTOM, list_models

    picker = app.studio_context["model_name"]
    assert picker.filterable and picker.value == DEMO  # the offline demo is the default
    values = [value for _, value in picker.choices]
    assert values == [*list_models(), CUSTOM] and values[0] == DEMO  # values stay the registry's names
    labels = dict((value, label) for label, value in picker.choices)
    assert labels["Qwen3-4B-Instruct-2507"].startswith("Qwen · Qwen3-4B-Instruct-2507")
    assert labels["Moonlight-16B-A3B-Instruct"].startswith("Kimi · ")  # typing "kimi" finds it too
    runs = [family for family, _ in groupby(get_model(value).family for value in values[:-1])]
    assert len(runs) == len(set(runs))  # each family in one piece


def test_advanced_settings_are_folded(app):
    import gradio as gr

    ctx = app.studio_context
    advanced = ctx["top_advanced"]
    assert isinstance(advanced, gr.Accordion) and advanced.open is False
    inside, stack = set(), list(advanced.children)
    while stack:  # Gradio wraps rows of inputs in Form blocks: look at every level
        block = stack.pop()
        inside.add(block.elem_id)
        stack += getattr(block, "children", [])
    assert {"template", "rope_scaling", "booster", "quantization_method"} <= inside
    assert ctx["quantization_method"].visible is False  # quantization starts off
    method = ctx["quantization_method"]._id  # the one change event that shows or hides the library (the memory
    (toggle,) = [fn for fn in _events(app, ctx["quantization_bit"], "change")  # estimate listens to it too)
                 if [block._id for block in fn.outputs] == [method]]
    assert toggle.fn("4")["visible"] is True and toggle.fn("none")["visible"] is False


def test_chat_and_buttons_for_beginners(app):
    ctx = app.studio_context
    box = ctx["chat_input"]
    assert box.lines == 1 and box.max_lines > 1  # Enter sends, Shift+Enter adds a line
    assert "Shift+Enter" in box.placeholder
    assert ctx["top_p"].info and ctx["temperature"].info and "JSON" in ctx["tools_help"].value
    assert ctx["abort_button"].variant == "secondary"


def test_the_demo_and_custom_entries_are_named_in_the_page_language():
    from engine.model.families import CUSTOM, DEMO
    from studio.tabs.top import model_choices

    chinese = dict((value, label) for label, value in model_choices([DEMO, CUSTOM], "zh"))
    assert chinese == {DEMO: "演示模型（离线）", CUSTOM: "自定义"}  # values stay the registry's names
    assert dict((v, label) for label, v in model_choices([DEMO], "en"))[DEMO] == "Demo (offline)"


def test_hub_datasets_not_downloaded_are_marked_in_the_picker(tmp_path, monkeypatch):
    import json

    from studio.datasets import dataset_picker

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    (tmp_path / "mine.json").write_text(json.dumps([{"instruction": "q", "output": "a"}]), encoding="utf-8")
    (tmp_path / "dataset_info.json").write_text(json.dumps({
        "mine": {"file_name": "mine.json"}, "far": {"hf_hub_url": "someone/far"},
        "near": {"hf_hub_url": "someone/near"}}), encoding="utf-8")
    (tmp_path / "cache" / "datasets--someone--near" / "snapshots" / "abc").mkdir(parents=True)
    entries = dict((value, label) for label, value in dataset_picker(tmp_path, "sft", "zh"))
    assert entries == {"mine": "mine", "far": "far — ⬇ 需下载", "near": "near"}
