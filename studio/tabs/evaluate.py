"""Evaluate & Predict: score a model on a multiple-choice benchmark, or generate predictions with BLEU/ROUGE.

Like training, the job runs as `python -m engine eval <run folder>/config.yaml` and the tab reads its folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from engine.errors import StudioError
from studio.context import Context
from studio.i18n import t
from studio.markup import md
from studio.run_texts import results_table
from studio.tabs.file_lists import job_ended

MODES = ["benchmark", "predict"]


def build(ctx: Context) -> None:
    """Mode, benchmark or dataset settings, generation settings, start/abort, progress and results."""
    import gradio as gr

    from engine.eval.tasks import list_tasks
    from studio.components import config_widget
    from studio.tabs.monitor import progress_html

    lang = ctx.lang
    with gr.Row():
        ctx.add("eval_mode", gr.Radio(choices=[(t(f"eval.mode.choices.{m}", lang), m) for m in MODES],
                                      value="benchmark", elem_id="eval_mode", label=t("eval.mode.label", lang)),
                key="eval.mode", choices=MODES)
        tasks = list_tasks()
        config_widget(ctx, "task", choices=tasks, value=tasks[0] if tasks else None, allow_custom_value=True)
        config_widget(ctx, "n_shot", widget="number")
        config_widget(ctx, "lang", name="eval_lang")
        ctx.add("eval_compare", gr.Checkbox(value=True, label=t("eval.compare.label", lang), elem_id="eval_compare",
                                            interactive=True), key="eval.compare")
    with gr.Row():
        config_widget(ctx, "eval_dataset", choices=[], value=[], multiselect=True, allow_custom_value=True, scale=3)
        config_widget(ctx, "cutoff_len", name="eval_cutoff_len", widget="number", value=1024)
        config_widget(ctx, "max_samples", name="eval_max_samples", widget="number", value=50)
        config_widget(ctx, "per_device_eval_batch_size", widget="number", value=4)
    with gr.Row():
        config_widget(ctx, "max_new_tokens", name="eval_max_new_tokens", widget="number", value=128)
        config_widget(ctx, "top_p", name="eval_top_p", widget="slider")
        config_widget(ctx, "temperature", name="eval_temperature", widget="slider", value=0.0)
        config_widget(ctx, "eval_num_beams", widget="number")
    with gr.Row():
        for name, variant in (("eval_start_button", "primary"), ("eval_abort_button", "stop")):
            ctx.add(name, gr.Button(t(f"eval.{name}.label", lang), elem_id=name, variant=variant),
                    key=f"eval.{name}", kind="button")
    ctx.add("eval_message", gr.Markdown("", elem_id="eval_message"))  # a refused Start, apart from the job's status
    ctx.add("eval_status", gr.Markdown(md("eval.msg.idle", lang), elem_id="eval_status"))
    ctx.add("eval_progress", gr.HTML(progress_html(None, lang), elem_id="eval_progress"))
    # Result tables appear once there are results: an empty one would be headed by Gradio's "1 2 3".
    ctx.add("eval_results", gr.Dataframe(interactive=False, elem_id="eval_results", wrap=True, visible=False,
                                         label=t("eval.results.label", lang)), key="eval.results", kind="plot")
    ctx.add("eval_page", gr.Number(value=1, precision=0, minimum=1, elem_id="eval_page", interactive=True,
                                   label=t("eval.page.label", lang)), key="eval.page")
    ctx.add("eval_predictions", gr.Dataframe(interactive=False, elem_id="eval_predictions", wrap=True, visible=False,
                                             label=t("eval.predictions.label", lang)), key="eval.predictions",
            kind="plot")
    ctx.add("eval_run_dir", gr.State(""))
    ctx.add("eval_timer", gr.Timer(1.0, active=False))


def build_eval_config(mode: str, model_name: str, model_path: str, method: str, checkpoint: list[str],
                      template: str, quantization_bit: str, task: str, n_shot: float, eval_lang: str,
                      compare: bool, datasets: list[str], dataset_dir: str, cutoff_len: float, max_samples: float,
                      batch_size: float, max_new_tokens: float, top_p: float, temperature: float,
                      num_beams: float | None = None) -> tuple[dict[str, Any], Path]:
    """The form's values → an eval config and its run folder (saves/<model>/<method>/eval_<time>)."""
    from studio.runs import default_run_name, run_folder, run_model_key
    from studio.widgets import checkpoint_to_config
    from studio.workspace import dataset_dir as workspace_dataset_dir

    model_key = run_model_key(model_name, model_path)
    config: dict[str, Any] = {
        "model_name_or_path": (model_path or "").strip(), "finetuning_type": method,
        "template": None if template in (None, "", "none") else template,
        "quantization_bit": None if quantization_bit in (None, "", "none") else int(quantization_bit),
        "per_device_eval_batch_size": int(batch_size or 1),
    }
    try:
        config.update(checkpoint_to_config(checkpoint or [], model_key, method))
    except ValueError as err:
        raise StudioError("eval_one_checkpoint", detail=str(err)) from None
    if mode == "predict":
        config.update({"do_predict": True, "eval_dataset": ",".join(datasets or []) or None,
                       "dataset_dir": workspace_dataset_dir(dataset_dir), "cutoff_len": int(cutoff_len or 1024),
                       "max_samples": int(max_samples) if max_samples else None,
                       "max_new_tokens": int(max_new_tokens or 128), "top_p": top_p, "temperature": temperature,
                       "do_sample": bool(temperature and temperature > 0),
                       "eval_num_beams": int(num_beams) if num_beams else None})  # the box's 0: the default
    else:
        config.update({"task": task, "n_shot": int(n_shot or 0), "lang": eval_lang,
                       "compare_with": "base" if compare and config.get("adapter_name_or_path") else None})
    return config, run_folder(model_key, method, default_run_name("eval"))


def start_eval(lang: str, *values: Any) -> tuple[Any, ...]:
    """Validate and launch the evaluation job; start polling its folder."""
    from studio.tabs.monitor import launch_job

    return launch_job("eval", build_eval_config, "eval.msg.starting", lang, values)


PAGE_SIZE = 20


def results_frames(run_dir: Path, lang: str, page: int = 1) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(score table, one page of predictions next to their references) read from the job's result files."""
    scores = predictions = None
    results = run_dir / "results.json"
    if results.is_file():
        data = json.loads(results.read_text(encoding="utf-8"))
        models = data.get("models", {})
        rows: dict[str, dict[str, Any]] = {}
        for label, model in models.items():
            for subject, entry in model.get("subjects", {}).items():
                rows.setdefault(entry.get("name", subject), {})[label] = entry.get("accuracy")
            rows.setdefault(t("eval.average", lang), {})[label] = model.get("average", {}).get("accuracy")
        if rows:
            scores = pd.DataFrame([{t("eval.subject", lang): k, **v} for k, v in rows.items()])
            if len(models) == 2:
                first, second = list(models)
                # Accuracies are percentages with two decimals: so is their difference (no float noise).
                scores[t("eval.difference", lang)] = (scores[second] - scores[first]).round(2)
    metrics = run_dir / "predict_results.json"
    if metrics.is_file():
        data = json.loads(metrics.read_text(encoding="utf-8"))
        scores = results_table(data, lang)
    generated = run_dir / "generated_predictions.jsonl"
    if generated.is_file():
        start = (max(int(page or 1), 1) - 1) * PAGE_SIZE
        lines = generated.read_text(encoding="utf-8").splitlines()[start:start + PAGE_SIZE]
        predictions = pd.DataFrame([json.loads(line) for line in lines if line.strip()])
    return scores, predictions


def poll_eval(run_dir: str, lang: str, page: float, monitor: Any) -> tuple[Any, ...]:
    """Timer tick, page change or language change: status, progress and, once done, the result tables (with no job
    yet, the idle texts in `lang`)."""
    import gradio as gr

    from studio.monitor import RunMonitor, status_markdown
    from studio.tabs.monitor import progress_html, table_update

    if not run_dir:
        return (md("eval.msg.idle", lang), progress_html(None, lang), gr.update(), gr.update(),
                gr.Timer(active=False), monitor, gr.skip())
    monitor = monitor or RunMonitor()
    view = monitor.poll(Path(run_dir))
    live = view.state in ("running", "new")
    scores, predictions = results_frames(Path(run_dir), lang, int(page or 1))
    return (status_markdown(view, lang), progress_html(view, lang), table_update(scores), table_update(predictions),
            gr.Timer(active=live), monitor, job_ended(run_dir, view.state))



def abort_eval(run_dir: str, lang: str) -> str:
    """Stop the evaluation job (it keeps what is done)."""
    from studio.runner import abort_run

    if run_dir and abort_run(Path(run_dir)):
        return t("train.msg.aborting", lang)
    return t("train.msg.nothing_to_abort", lang)


def wire(ctx: Context) -> None:
    """Start / abort / poll; eval datasets follow the data folder."""
    import gradio as gr

    from studio.tabs.train_data import dataset_choices

    lang = ctx["lang"]
    private = {"api_visibility": "private"}
    form = [ctx[n] for n in ("eval_mode", "model_name", "model_path", "finetuning_type", "checkpoint", "template",
                             "quantization_bit", "task", "n_shot", "eval_lang", "eval_compare", "eval_dataset",
                             "dataset_dir", "eval_cutoff_len", "eval_max_samples", "per_device_eval_batch_size",
                             "eval_max_new_tokens", "eval_top_p", "eval_temperature", "eval_num_beams")]
    monitor = gr.State(None)
    ctx["eval_start_button"].click(start_eval, [lang, *form],
                                   [ctx["eval_message"], ctx["eval_status"], ctx["eval_run_dir"], ctx["eval_timer"]],
                                   **private)
    ctx["eval_abort_button"].click(abort_eval, [ctx["eval_run_dir"], lang], ctx["eval_status"], **private)
    outputs = [ctx["eval_status"], ctx["eval_progress"], ctx["eval_results"], ctx["eval_predictions"],
               ctx["eval_timer"], monitor, ctx["job_ended"]]
    ctx["eval_timer"].tick(poll_eval, [ctx["eval_run_dir"], lang, ctx["eval_page"], monitor], outputs, **private)
    ctx["eval_page"].change(poll_eval, [ctx["eval_run_dir"], lang, ctx["eval_page"], monitor], outputs, **private)
    lang.change(poll_eval, [ctx["eval_run_dir"], lang, ctx["eval_page"], monitor], outputs, **private)  # texts follow
    sft = gr.State("sft")
    ctx["dataset_dir"].change(dataset_choices, [ctx["dataset_dir"], sft, lang], ctx["eval_dataset"], **private)
    ctx["tab_evaluate"].select(dataset_choices, [ctx["dataset_dir"], sft, lang], ctx["eval_dataset"], **private)
