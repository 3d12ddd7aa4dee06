"""The top bar: language, model (marked when it needs a download or more memory), method, checkpoints and
quantization; chat template, rope scaling, booster and quantization library folded under Advanced."""

from __future__ import annotations

from typing import Any

from studio.context import Context
from studio.i18n import available_languages, t

HUBS = ["huggingface", "modelscope"]
BOOSTERS = ["auto", "sdpa", "flashattn2", "unsloth", "liger_kernel"]
QUANT_BITS = ["none", "8", "4"]


def build(ctx: Context) -> None:
    """Create the general-settings widgets shared by every tab; the ones a beginner needs not touch are folded
    into an Advanced accordion."""
    import gradio as gr

    from engine.model.families import CUSTOM, list_models, model_path
    from engine.templates import list_templates
    from studio.components import config_widget

    lang = ctx.lang
    models = demo_models() or [*list_models(), CUSTOM]
    first = models[0]
    with gr.Row():
        ctx.add("lang", gr.Dropdown(choices=[(name, code) for code, name in available_languages().items()], value=lang,
                                    label=t("top.lang.label", lang), elem_id="lang", interactive=True, scale=1),
                key="top.lang")
        ctx.add("model_name", gr.Dropdown(choices=model_choices(models, lang), value=first, elem_id="model_name",
                                          label=t("top.model_name.label", lang), info=model_info(lang),
                                          filterable=True, interactive=True, scale=2),
                key="top.model_name", extra=lambda code: {"choices": model_choices(models, code),
                                                          "info": model_info(code)})
        ctx.add("model_path", gr.Textbox(value=model_path(first), label=t("top.model_path.label", lang),
                                         info=t("top.model_path.info", lang), elem_id="model_path", scale=3,
                                         interactive=not demo_models()),
                key="top.model_path")
        ctx.add("hub", gr.Radio(choices=[(t(f"top.hub.choices.{h}", lang), h) for h in HUBS], value=HUBS[0],
                                label=t("top.hub.label", lang), info=t("top.hub.info", lang), elem_id="hub",
                                scale=1), key="top.hub", choices=HUBS)
    ctx.add("model_note", gr.Markdown("", elem_id="model_note"))
    # The model whose values were last applied: the picker also reports an "input" when it is opened and closed
    # on the same model, which must not undo the values a person typed since.
    ctx.add("applied_model", gr.State(first))
    with gr.Row():
        config_widget(ctx, "finetuning_type", scale=1)
        ctx.add("checkpoint", gr.Dropdown(choices=[], value=[], multiselect=True, allow_custom_value=True,
                                          label=t("top.checkpoint.label", lang), info=t("top.checkpoint.info", lang),
                                          elem_id="checkpoint", interactive=True, scale=3), key="top.checkpoint")
        ctx.add("quantization_bit", gr.Dropdown(choices=quant_choices(lang), value="none", elem_id="quantization_bit",
                                                label=t("top.quantization_bit.label", lang),
                                                info=t("top.quantization_bit.info", lang), interactive=True, scale=1),
                key="top.quantization_bit", choices=QUANT_BITS)
    advanced = gr.Accordion(t("top.advanced.label", lang), open=False, elem_id="top_advanced")
    with ctx.add("top_advanced", advanced, key="top.advanced", kind="accordion"), gr.Row():
        config_widget(ctx, "quantization_method", choices=["bnb", "gptq", "awq", "hqq", "eetq"], scale=1,
                      visible=False)  # shown once quantization is on: it means nothing without it
        config_widget(ctx, "template", value="chatml", choices=list_templates(), scale=1)
        config_widget(ctx, "rope_scaling", value="none", choices=["none", "linear", "dynamic", "yarn", "llama3"], scale=1)
        ctx.add("booster", gr.Dropdown(choices=booster_choices(lang), value="auto", elem_id="booster",
                                       label=t("top.booster.label", lang), info=t("top.booster.info", lang),
                                       interactive=True, scale=1), key="top.booster", choices=BOOSTERS)


def model_choices(names: list[str], lang: str) -> list[tuple[str, str]]:
    """Model picker entries (label, registry name), in the order given (`list_models()` keeps each family together).

    A registered model is labelled with its family ("Qwen · Qwen3-8B"), so that typing a family into the picker
    finds all of it; each is marked when it must be downloaded first or needs more memory than this machine has
    (the legend is in `model_info`). The demo and Custom are named in the page's language.
    """
    from engine.model.families import CUSTOM, DEMO, DEMO_AUDIO, DEMO_VISION, MODELS, model_label
    from studio.capabilities import memory_needed_gb, model_downloaded, training_memory

    own_words = {DEMO: "top.model_name.choices.demo", DEMO_VISION: "top.model_name.choices.demo_vision",
                 DEMO_AUDIO: "top.model_name.choices.demo_audio", CUSTOM: "top.model_name.choices.custom"}
    have, on_gpu = training_memory()
    choices = []
    for name in names:
        info = MODELS.get(name)
        # The others are product names, the same in every language.
        label = t(own_words[name], lang) if name in own_words else model_label(name) if info else name
        marks = []
        if info is not None and info.hf is not None:
            if not any(model_downloaded(repo, hub) for repo, hub in ((info.hf, "huggingface"), (info.ms, "modelscope"))
                       if repo):
                marks.append(t("top.model_name.download", lang))
            need = memory_needed_gb(info.params, on_gpu) if info.params else 0
            if have and need > have:
                marks.append(t("top.model_name.needs_memory", lang, gb=need))
        choices.append((f"{label} — {' · '.join(marks)}" if marks else label, name))
    return choices


def model_info(lang: str) -> str:
    """The model picker's info: what to choose, and the legend of its marks with this machine's memory."""
    from studio.capabilities import training_memory

    have = round(training_memory()[0])
    return f"{t('top.model_name.info', lang)} {t('top.model_name.legend', lang, have=have)}"


def demo_models() -> list[str]:
    """In demo mode, the registry models on the demo's allow-list (the offline demo first); else empty."""
    from engine.model.families import list_models, model_path
    from studio.demo_mode import active

    settings = active()
    if settings is None:
        return []
    return [name for name in list_models() if model_path(name) in settings.models]


def quant_choices(lang: str) -> list[tuple[str, str]]:
    """Quantization choices, each saying why when this machine cannot run it."""
    from studio.capabilities import quantization_availability

    ok, reason = quantization_availability()
    labels = []
    for bit in QUANT_BITS:
        label = t(f"top.quantization_bit.choices.{bit}", lang)
        if bit != "none" and not ok:
            label += f" — {t(reason, lang)}"
        labels.append((label, bit))
    return labels


def booster_choices(lang: str) -> list[tuple[str, str]]:
    """Booster choices, each saying why when this machine cannot run it."""
    from studio.capabilities import booster_availability

    available = booster_availability()
    labels = []
    for booster in BOOSTERS:
        label = t(f"top.booster.choices.{booster}", lang)
        ok, reason = available.get(booster, (True, None))
        if not ok and reason:
            label += f" — {t(reason, lang)}"
        labels.append((label, booster))
    return labels


def on_model_change(name: str, hub: str) -> tuple[Any, ...]:
    """Model picked → (model path, template) and the model's recommended training values (dict)."""
    from engine.model.families import CUSTOM, get_model, model_path

    if name == CUSTOM:
        return None, None, {}
    info = get_model(name)
    return model_path(name, hub), info.template, dict(info.recommended or {})


def checkpoint_choices(model_name: str, model_path_value: str, finetuning_type: str) -> list[str]:
    """Earlier runs of this model and method that hold weights."""
    from studio.runs import list_adapters, run_model_key

    return list_adapters(run_model_key(model_name, model_path_value), finetuning_type)


def recommended_changes(recommended: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The form fields a model's recommended values change: name → (current value, recommended value).

    Only fields in `current` (the form's widgets) count; a comma-separated dataset is the dropdown's list.
    """
    changes = {}
    for name, value in recommended.items():
        if name not in current:
            continue
        if name == "dataset" and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        old = current[name]
        same = old == value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                same = old is not None and float(old) == float(value)
            except (TypeError, ValueError):
                same = False
        if not same:
            changes[name] = (old, value)
    return changes


def model_note(model: str, changes: dict[str, tuple[Any, Any]], lang: str) -> str:
    """The short note under the model picker: which values choosing `model` changed, then what a beginner should
    know about the model (thinking or not, licence, memory) from the model registry."""
    from engine.model.families import MODELS
    from studio.markup import md

    if not changes:
        note = md("top.model_note.unchanged", lang, model=model)
    else:
        listed = ", ".join(f"{t(f'field.{name}.label', lang)} {_shown(old, lang)} → {_shown(new, lang)}"
                           for name, (old, new) in changes.items())
        note = "ℹ️ " + md("top.model_note.applied", lang, model=model, changes=listed)
    info = MODELS.get(model)
    if info is not None and info.notes:
        note += "\n\n" + md("top.model_note.about", lang, notes=info.notes)
    return note


def _shown(value: Any, lang: str) -> str:
    if isinstance(value, bool):  # a switch: on or off, in the page's language
        return t("top.model_note.on" if value else "top.model_note.off", lang)
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "—"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "—" if value in (None, "") else str(value)


def wire(ctx: Context, demo: Any) -> None:
    """Model → path, template and recommended values (with a note of what changed); quantization → its library's
    visibility; model/method → checkpoint choices (also on page load)."""
    import gradio as gr

    from studio.tabs.train import FORM_FIELDS

    recommended_targets = [name for name in FORM_FIELDS if name in ctx.components and name not in
                           ("model_name", "model_path", "hub", "template")]

    def apply_model(name: str, applied: str, hub: str, lang: str, *values: Any) -> list[Any]:
        """(model, model last applied, hub, language, current form values) → path, template, the recommended values
        that differ from the form's, a note listing them (others are left as they are), and the applied model."""
        if name == applied:
            return [gr.update() for _ in range(len(recommended_targets) + 3)] + [applied]
        path, template, recommended = on_model_change(name, hub)
        changes = recommended_changes(recommended, dict(zip(recommended_targets, values, strict=True)))
        updates = [gr.update(value=path) if path else gr.update(), gr.update(value=template) if template else
                   gr.update()]
        updates += [gr.update(value=changes[target][1]) if target in changes else gr.update()
                    for target in recommended_targets]
        return [*updates, model_note(name, changes, lang) if path else "", name]

    def refresh_checkpoints(name: str, path: str, method: str) -> Any:
        """Model or method changed → the runs that can be continued."""
        return gr.update(choices=checkpoint_choices(name, path, method), value=[])

    targets = [ctx[n] for n in recommended_targets]
    private = {"api_visibility": "private"}
    # `input`, not `change`: only a person choosing a model replaces values (a loaded config keeps its own).
    ctx["model_name"].input(apply_model, [ctx["model_name"], ctx["applied_model"], ctx["hub"], ctx["lang"], *targets],
                            [ctx["model_path"], ctx["template"], *targets, ctx["model_note"], ctx["applied_model"]],
                            **private)
    ctx["hub"].change(lambda name, hub: on_model_change(name, hub)[0] or gr.update(),
                      [ctx["model_name"], ctx["hub"]], ctx["model_path"], **private)
    ctx["quantization_bit"].change(lambda bits: gr.update(visible=bits not in (None, "", "none")),
                                   ctx["quantization_bit"], ctx["quantization_method"], **private)
    checkpoint_inputs = [ctx["model_name"], ctx["model_path"], ctx["finetuning_type"]]
    for trigger in ("model_name", "model_path", "finetuning_type"):
        ctx[trigger].change(refresh_checkpoints, checkpoint_inputs, ctx["checkpoint"], **private)
