"""Evaluate & Predict: its settings exist; the engine's evaluation arrives in a later version (said plainly)."""

from __future__ import annotations

from studio.context import Context
from studio.i18n import t


def build(ctx: Context) -> None:
    """Dataset, lengths, batch size, prediction and sampling settings, and the unavailable notice."""
    import gradio as gr

    from studio.components import config_widget

    lang = ctx.lang
    ctx.add("eval_notice", gr.Markdown(t('notice.eval_unavailable.label', lang), elem_id="eval_notice"),
            key="notice.eval_unavailable", kind="markdown")
    with gr.Row():
        config_widget(ctx, "eval_dataset", choices=[], value=[], multiselect=True, allow_custom_value=True, scale=3)
        config_widget(ctx, "cutoff_len", name="eval_cutoff_len", widget="number", value=1024)
        config_widget(ctx, "max_samples", name="eval_max_samples", widget="number", value=100)
        config_widget(ctx, "per_device_eval_batch_size", widget="number")
        config_widget(ctx, "predict_with_generate", value=True)
    with gr.Row():
        config_widget(ctx, "max_new_tokens", name="eval_max_new_tokens", widget="number", value=512)
        config_widget(ctx, "top_p", name="eval_top_p", widget="slider")
        config_widget(ctx, "temperature", name="eval_temperature", widget="slider")
        config_widget(ctx, "output_dir", name="eval_output_dir")
    with gr.Row():
        for name in ("eval_start_button", "eval_abort_button"):
            ctx.add(name, gr.Button(t(f"eval.{name}.label", lang), interactive=False, elem_id=name),
                    key=f"eval.{name}", kind="button")
