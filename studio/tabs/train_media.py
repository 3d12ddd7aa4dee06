"""The Train tab's Images, video and audio group: which parts of a media model train, and how images, video frames
and sound are sized before the model reads them. Shown only for a template whose models read media, and in it only
the settings of the kinds that template reads."""

from __future__ import annotations

from typing import Any

from engine.errors import ConfigError
from engine.templates import get_template
from studio.context import Context

# Which parts of a media model train: shown for any template that reads media.
MEDIA_SWITCHES = ("freeze_vision_tower", "freeze_multi_modal_projector", "freeze_language_model")
# How each kind of media is sized: shown only when the template reads that kind.
MEDIA_FIELDS = {"images": ("image_max_pixels", "image_min_pixels"),
                "videos": ("video_max_pixels", "video_min_pixels", "video_fps", "video_maxlen"),
                "audios": ("audio_sampling_rate",)}
MEDIA_KEYS = (*MEDIA_SWITCHES, *(name for names in MEDIA_FIELDS.values() for name in names))


def template_modalities(template: str | None) -> frozenset[str]:
    """The media a template's models read (`images`, `videos`, `audios`); empty for text templates and for names
    that are not registered (a typed name, or a media template not built yet: validation explains those)."""
    try:
        return get_template(template).modalities if template else frozenset()
    except ConfigError:
        return frozenset()


def media_visibility(template: str | None) -> dict[str, bool]:
    """Show the media group only for a template that reads media, and in it the row of settings of each kind it
    reads: `media` (the group) or a kind (`images`, `videos`, `audios`: its row) → shown."""
    reads = template_modalities(template)
    return {"media": bool(reads), **{kind: kind in reads for kind in MEDIA_FIELDS}}


def initial_template(ctx: Context) -> str | None:
    """The template the page opens with: the top bar's widget when it is built, else the initial values'."""
    widget = ctx.components.get("template")
    return widget.value if widget is not None else ctx.initial.get("template")


def build(ctx: Context) -> None:
    """The group's widgets (the caller opens the accordion): the three switches, then one row per media kind."""
    import gradio as gr

    from studio.components import config_widget

    shown = media_visibility(initial_template(ctx))
    with gr.Row():
        for name in MEDIA_SWITCHES:
            config_widget(ctx, name)
    for kind, names in MEDIA_FIELDS.items():
        # The row itself is hidden (not just its boxes), so a kind the template does not read leaves no gap.
        with gr.Row(visible=shown[kind], elem_id=f"media_{kind}"):
            for name in names:
                config_widget(ctx, name, widget="number")


def wire(ctx: Context) -> None:
    """Template changed (by hand, by picking a model, by loading settings) → show the group and the rows of settings
    of the media kinds the template reads."""
    import gradio as gr

    names = list(media_visibility(None))

    def toggle(template: str | None) -> list[Any]:
        """Template name → visibility updates of the media group and its per-kind rows."""
        shown = media_visibility(template)
        return [gr.update(visible=shown[name]) for name in names]

    # The rows hold no text of their own, so they are not among the labelled components: found in the group by id.
    rows = {block.elem_id: block for block in ctx["group_media"].children}
    outputs = [ctx["group_media"] if name == "media" else rows[f"media_{name}"] for name in names]
    ctx["template"].change(toggle, ctx["template"], outputs, api_visibility="private")
