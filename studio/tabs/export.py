"""Export: merge the chosen checkpoint into its base (safetensors), optionally GGUF + Ollama Modelfile, hub upload,
and a parity check of the exported model's answers; runs as `python -m engine export <folder>/config.yaml`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from engine.errors import StudioError
from studio.context import Context
from studio.i18n import t
from studio.markup import md
from studio.tabs.file_lists import job_ended


def build(ctx: Context) -> None:
    """Shard size, quantization, device, formats, folder, hub id, the export button, progress and parity."""
    import gradio as gr

    from studio.components import config_widget
    from studio.tabs.monitor import progress_html

    lang = ctx.lang
    with gr.Row():
        config_widget(ctx, "export_size", widget="number")
        config_widget(ctx, "export_device")
        config_widget(ctx, "export_legacy_format")
        config_widget(ctx, "export_gguf")
        config_widget(ctx, "export_parity")
    with gr.Row():
        config_widget(ctx, "export_quantization_bit")
        config_widget(ctx, "export_quantization_dataset")
        config_widget(ctx, "export_dir", scale=2, value="")
        config_widget(ctx, "export_hub_model_id", scale=2)
    with gr.Row():
        ctx.add("export_button", gr.Button(t("export.export_button.label", lang), variant="primary",
                                           elem_id="export_button"), key="export.export_button", kind="button")
    ctx.add("export_message", gr.Markdown("", elem_id="export_message"))  # a refused Start, apart from the status
    ctx.add("export_status", gr.Markdown(md("export.msg.idle", lang), elem_id="export_status"))
    ctx.add("export_progress", gr.HTML(progress_html(None, lang), elem_id="export_progress"))
    ctx.add("export_parity_table", gr.Dataframe(interactive=False, elem_id="export_parity_table", wrap=True,
                                                visible=False,  # shown with the parity check's rows
                                                label=t("export.parity.label", lang)), key="export.parity",
            kind="plot")
    ctx.add("export_run_dir", gr.State(""))
    ctx.add("export_timer", gr.Timer(1.0, active=False))


def build_export_config(model_name: str, model_path: str, method: str, checkpoint: list[str], template: str,
                        quantization_bit: str, size: float, device: str, legacy: bool, gguf: str, parity: bool,
                        gptq_bits: Any, gptq_data: str, export_dir: str, hub_id: str) -> tuple[dict[str, Any], Path]:
    """The form → an export config and its folder (default saves/<model>/<method>/export_<time>)."""
    from studio.runner import resolve_run_dir
    from studio.runs import default_run_name, run_folder, run_model_key
    from studio.widgets import checkpoint_to_config

    model_key = run_model_key(model_name, model_path)
    config: dict[str, Any] = {
        "model_name_or_path": (model_path or "").strip(), "finetuning_type": method,
        "template": None if template in (None, "", "none") else template,
        "quantization_bit": None if quantization_bit in (None, "", "none") else int(quantization_bit),
        "export_size": int(size or 5), "export_device": device, "export_legacy_format": bool(legacy),
        "export_gguf": gguf or "none", "export_parity": bool(parity),
        "export_quantization_bit": None if gptq_bits in (None, "", "none") else int(gptq_bits),
        "export_quantization_dataset": (gptq_data or "").strip() or None,
        "export_hub_model_id": (hub_id or "").strip() or None,
    }
    try:
        config.update(checkpoint_to_config(checkpoint or [], model_key, method))
    except ValueError as err:
        raise StudioError("eval_one_checkpoint", detail=str(err)) from None
    folder = (export_dir or "").strip()
    run_dir = resolve_run_dir(folder) if folder else run_folder(model_key, method, default_run_name("export"))
    return config, run_dir


def start_export(lang: str, *values: Any) -> tuple[Any, ...]:
    """Validate and launch the export job; start polling its folder."""
    from studio.tabs.monitor import launch_job

    return launch_job("export", build_export_config, "export.msg.starting", lang, values)


def parity_frame(run_dir: Path, lang: str) -> pd.DataFrame | None:
    """Per prompt: does the exported model answer as the original did?"""
    path = run_dir / "parity.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text(encoding="utf-8"))
    return pd.DataFrame([{t("export.parity.prompt", lang): row["prompt"],
                          t("export.parity.same", lang): "✅" if row["match"] else "❌",
                          t("export.parity.original", lang): row["original"],
                          t("export.parity.exported", lang): row["exported"]} for row in report.get("prompts", [])])


def poll_export(run_dir: str, lang: str, monitor: Any) -> tuple[Any, ...]:
    """Timer tick or language change: status, progress and, at the end, the parity table (with no job yet, the idle
    texts in `lang`)."""
    import gradio as gr

    from studio.monitor import RunMonitor, status_markdown
    from studio.tabs.monitor import progress_html, table_update

    if not run_dir:
        return (md("export.msg.idle", lang), progress_html(None, lang), gr.update(), gr.Timer(active=False), monitor,
                gr.skip())
    monitor = monitor or RunMonitor()
    view = monitor.poll(Path(run_dir))
    live = view.state in ("running", "new")
    return (status_markdown(view, lang), progress_html(view, lang), table_update(parity_frame(Path(run_dir), lang)),
            gr.Timer(active=live), monitor, job_ended(run_dir, view.state))


def wire(ctx: Context) -> None:
    """Export button and polling."""
    import gradio as gr

    lang = ctx["lang"]
    private = {"api_visibility": "private"}
    form = [ctx[n] for n in ("model_name", "model_path", "finetuning_type", "checkpoint", "template",
                             "quantization_bit", "export_size", "export_device", "export_legacy_format",
                             "export_gguf", "export_parity", "export_quantization_bit",
                             "export_quantization_dataset", "export_dir", "export_hub_model_id")]
    monitor = gr.State(None)
    ctx["export_button"].click(start_export, [lang, *form],
                               [ctx["export_message"], ctx["export_status"], ctx["export_run_dir"],
                                ctx["export_timer"]], **private)
    outputs = [ctx["export_status"], ctx["export_progress"], ctx["export_parity_table"], ctx["export_timer"], monitor,
               ctx["job_ended"]]
    ctx["export_timer"].tick(poll_export, [ctx["export_run_dir"], lang, monitor], outputs, **private)
    lang.change(poll_export, [ctx["export_run_dir"], lang, monitor], outputs, **private)  # texts follow the language
