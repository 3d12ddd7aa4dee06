"""Export: its settings exist; the engine's export arrives in a later version (said plainly)."""

from __future__ import annotations

from studio.context import Context
from studio.i18n import t


def build(ctx: Context) -> None:
    """Shard size, quantization and calibration data, device, format, folder, hub id, and the notice."""
    import gradio as gr

    from studio.components import config_widget

    lang = ctx.lang
    ctx.add("export_notice", gr.Markdown(t('notice.export_unavailable.label', lang),
                                         elem_id="export_notice"), key="notice.export_unavailable", kind="markdown")
    with gr.Row():
        config_widget(ctx, "export_size", widget="number")
        config_widget(ctx, "export_quantization_bit")
        config_widget(ctx, "export_quantization_dataset")
        config_widget(ctx, "export_device")
        config_widget(ctx, "export_legacy_format")
    with gr.Row():
        config_widget(ctx, "export_dir", scale=2)
        config_widget(ctx, "export_hub_model_id", scale=2)
        ctx.add("export_button", gr.Button(t("export.export_button.label", lang), interactive=False,
                                           elem_id="export_button"), key="export.export_button", kind="button")
