"""Evaluate & Predict: score a model on benchmarks through lm-evaluation-harness (base and tuned side by side, compared
with earlier runs in a chart), or generate predictions with BLEU/ROUGE, and judge a run's predictions with a judge
model behind an OpenAI-compatible endpoint (LLM as judge).

Like training, each job runs as `python -m engine eval|judge <run folder>/config.yaml` and the tab reads its folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from engine.errors import ConfigError, StudioError
from engine.eval.judge import ROWS_FILE, SUMMARY_FILE
from engine.eval.judge_scores import DEFAULT_RUBRIC
from engine.eval.predict import PREDICTIONS_FILE
from studio.context import Context
from studio.i18n import t
from studio.markup import md
from studio.tabs.eval_results import benchmark_runs, chart_update, results_frames
from studio.tabs.file_lists import job_ended

MODES = ["benchmark", "predict"]


def build(ctx: Context) -> None:
    """Mode, benchmark or dataset settings, generation settings, start/abort, progress and results."""
    import gradio as gr

    from engine.eval.tasks import list_tasks
    from studio.components import config_widget
    from studio.i18n import plot_titles
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
        config_widget(ctx, "limit", name="eval_limit", widget="number", value=0)
        config_widget(ctx, "apply_chat_template", widget="checkbox")
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
    with gr.Row():
        ctx.add("eval_chart", gr.BarPlot(x="category", y="score", color="model", elem_id="eval_chart", visible=False,
                                         height=320, scale=3, label=t("eval.chart.label", lang),
                                         **plot_titles("eval.chart", lang)), key="eval.chart", kind="plot")
        ctx.add("eval_compare_runs", gr.Dropdown(choices=[], value=[], multiselect=True, elem_id="eval_compare_runs",
                                                 interactive=True, label=t("eval.compare_runs.label", lang),
                                                 info=t("eval.compare_runs.info", lang)), key="eval.compare_runs")
    ctx.add("eval_page", gr.Number(value=1, precision=0, minimum=1, elem_id="eval_page", interactive=True,
                                   label=t("eval.page.label", lang)), key="eval.page")
    ctx.add("eval_predictions", gr.Dataframe(interactive=False, elem_id="eval_predictions", wrap=True, visible=False,
                                             label=t("eval.predictions.label", lang)), key="eval.predictions",
            kind="plot")
    ctx.add("eval_run_dir", gr.State(""))
    ctx.add("eval_timer", gr.Timer(1.0, active=False))
    build_judge(ctx)


def build_judge(ctx: Context) -> None:
    """The Judge group: which run's predictions, the endpoint, model, key variable, scale and rubric; start/abort,
    progress, mean ± spread and a table of scores per row."""
    import gradio as gr

    from studio.components import config_widget
    from studio.tabs.monitor import progress_html

    lang = ctx.lang
    with ctx.add("judge_group", gr.Accordion(t("eval.judge.group.label", lang), open=False, elem_id="judge_group"),
                 key="eval.judge.group", kind="accordion"):
        ctx.add("judge_intro", gr.Markdown(t("eval.judge.intro.label", lang), elem_id="judge_intro"),
                key="eval.judge.intro", kind="markdown")
        with gr.Row():
            ctx.add("judge_run", gr.Dropdown(choices=[], value=None, elem_id="judge_run", interactive=True, scale=2,
                                             label=t("eval.judge.run.label", lang),
                                             info=t("eval.judge.run.info", lang)), key="eval.judge.run")
            config_widget(ctx, "judge_base_url", scale=2)
            config_widget(ctx, "judge_model")
            config_widget(ctx, "judge_api_key_env")
        with gr.Row():
            for name in ("judge_scale_min", "judge_scale_max", "judge_max_samples", "judge_concurrency"):
                config_widget(ctx, name, widget="number")
        config_widget(ctx, "judge_rubric", value=DEFAULT_RUBRIC, lines=8, max_lines=30)
        with gr.Row():
            for name, variant in (("judge_start_button", "primary"), ("judge_abort_button", "stop")):
                ctx.add(name, gr.Button(t(f"eval.{name}.label", lang), elem_id=name, variant=variant),
                        key=f"eval.{name}", kind="button")
        ctx.add("judge_message", gr.Markdown("", elem_id="judge_message"))
        ctx.add("judge_status", gr.Markdown(md("eval.judge.msg.idle", lang), elem_id="judge_status"))
        ctx.add("judge_progress", gr.HTML(progress_html(None, lang), elem_id="judge_progress"))
        ctx.add("judge_summary", gr.Markdown("", elem_id="judge_summary"))
        ctx.add("judge_rows", gr.Dataframe(interactive=False, elem_id="judge_rows", wrap=True, visible=False,
                                           label=t("eval.judge.rows.label", lang)), key="eval.judge.rows",
                kind="plot")
    ctx.add("judge_run_dir", gr.State(""))
    ctx.add("judge_timer", gr.Timer(1.0, active=False))


def build_eval_config(mode: str, model_name: str, model_path: str, method: str, checkpoint: list[str],
                      template: str, quantization_bit: str, task: str, n_shot: float, eval_lang: str,
                      compare: bool, datasets: list[str], dataset_dir: str, cutoff_len: float, max_samples: float,
                      batch_size: float, max_new_tokens: float, top_p: float, temperature: float,
                      num_beams: float | None = None, limit: float | None = None,
                      chat_template: bool = False) -> tuple[dict[str, Any], Path]:
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
                       "limit": (int(limit) if float(limit) >= 1 else float(limit)) if limit else None,
                       "apply_chat_template": bool(chat_template),
                       "compare_with": "base" if compare and config.get("adapter_name_or_path") else None})
    return config, run_folder(model_key, method, default_run_name("eval"))


def start_eval(lang: str, *values: Any) -> tuple[Any, ...]:
    """Validate and launch the evaluation job; start polling its folder."""
    from studio.tabs.monitor import launch_job

    return launch_job("eval", build_eval_config, "eval.msg.starting", lang, values)


def poll_eval(run_dir: str, lang: str, page: float, monitor: Any, compare_runs: list[str] | None = None
              ) -> tuple[Any, ...]:
    """Timer tick, page change, picked runs or language change: status, progress and, once done, the result tables
    and the chart of this run's models beside the picked runs' (with no job yet, the idle texts in `lang`)."""
    import gradio as gr

    from studio.monitor import RunMonitor, status_markdown
    from studio.tabs.monitor import progress_html, table_update

    if not run_dir:
        return (md("eval.msg.idle", lang), progress_html(None, lang), gr.update(), gr.update(),
                gr.Timer(active=False), monitor, gr.skip(), chart_update(list(compare_runs or []), lang))
    monitor = monitor or RunMonitor()
    view = monitor.poll(Path(run_dir))
    live = view.state in ("running", "new")
    scores, predictions = results_frames(Path(run_dir), lang, int(page or 1))
    return (status_markdown(view, lang), progress_html(view, lang), table_update(scores), table_update(predictions),
            gr.Timer(active=live), monitor, job_ended(run_dir, view.state),
            chart_update([run_dir, *(compare_runs or [])], lang))



def abort_eval(run_dir: str, lang: str) -> str:
    """Stop the evaluation job (it keeps what is done)."""
    from studio.runner import abort_run

    if run_dir and abort_run(Path(run_dir)):
        return t("train.msg.aborting", lang)
    return t("train.msg.nothing_to_abort", lang)


def judge_runs(lang: str, current: str | None = None) -> Any:
    """The Judge picker: every run folder holding predictions (newest first), keeping the current pick."""
    import gradio as gr

    from studio.runs import list_runs
    from studio.workspace import saves_dir

    saves = saves_dir().resolve()
    folders = [Path(run["path"]) for run in list_runs(saves) if (Path(run["path"]) / PREDICTIONS_FILE).is_file()]
    choices = [(str(folder.relative_to(saves)), str(folder)) for folder in folders]
    value = current if current in [c[1] for c in choices] else (choices[0][1] if choices else None)
    return gr.update(choices=choices, value=value)


def latest_judgment(run: str | None) -> str:
    """The newest judge_<time> folder inside a predictions run ("" when it was never judged)."""
    if not run or not Path(run).is_dir():
        return ""
    found = sorted(p for p in Path(run).glob("judge_*") if p.is_dir() and (p / "config.yaml").is_file())
    return str(found[-1]) if found else ""


def build_judge_config(run: str | None, base_url: str, model: str, key_env: str, scale_min: float,
                       scale_max: float, max_samples: float, concurrency: float,
                       rubric: str) -> tuple[dict[str, Any], Path]:
    """The Judge form's values → a judge config and its run folder (<predictions run>/judge_<time>).

    The model keys come from the predictions run (what made them: they record where the judged text came from);
    the rubric is left out when it is the built-in one, so the config says "default" rather than copying it.
    """
    import yaml

    from studio.runs import default_run_name

    folder = Path(run) if run else None
    if folder is None or not (folder / PREDICTIONS_FILE).is_file():
        raise ConfigError("judge_no_predictions", file=PREDICTIONS_FILE)
    try:
        made_by = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        made_by = {}
    made_by = made_by if isinstance(made_by, dict) else {}
    text = (rubric or "").strip()
    config: dict[str, Any] = {
        "model_name_or_path": made_by.get("model_name_or_path") or "demo",
        "finetuning_type": made_by.get("finetuning_type") or "lora",
        "judge_predictions": str(folder / PREDICTIONS_FILE), "judge_base_url": (base_url or "").strip() or None,
        "judge_model": (model or "").strip() or None, "judge_api_key_env": (key_env or "").strip() or "JUDGE_API_KEY",
        "judge_scale_min": int(scale_min or 0), "judge_scale_max": int(scale_max or 0),
        "judge_max_samples": int(max_samples) if max_samples else None, "judge_concurrency": int(concurrency or 1),
        "judge_rubric": None if text == DEFAULT_RUBRIC.strip() or not text else rubric,
    }
    return config, folder / default_run_name("judge")


def start_judge(lang: str, *values: Any) -> tuple[Any, ...]:
    """Validate and launch the judge job (it needs no GPU); start polling its folder."""
    from studio.tabs.monitor import launch_job

    return launch_job("judge", build_judge_config, "eval.judge.msg.starting", lang, values, devices=[])


def _shown(value: Any) -> str:
    """A number as people read it (two decimals at most), "–" for none."""
    return "–" if value is None else f"{round(value, 2):g}" if isinstance(value, (int, float)) else str(value)


def judge_results(run_dir: Path, lang: str, limit: int = 200) -> tuple[str, pd.DataFrame | None]:
    """(mean ± spread line, the first `limit` rows: score, reason or why there is none, prediction, reference)."""
    summary_text, rows = "", None
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = None
    if isinstance(summary, dict) and summary.get("count_scored") is not None:
        low, high = (summary.get("ci95") or [None, None])[:2]
        scale = summary.get("scale") or [None, None]
        summary_text = md("eval.judge.summary", lang, mean=_shown(summary.get("mean")), sem=_shown(summary.get("sem")),
                          low=_shown(low), high=_shown(high), std=_shown(summary.get("std")), min=_shown(scale[0]),
                          max=_shown(scale[1]), scored=summary.get("count_scored", 0),
                          failed=summary.get("count_failed", 0))
    records = []
    try:
        with open(run_dir / ROWS_FILE, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
                if len(records) >= limit:
                    break
    except OSError:
        pass
    columns = ("index", "score", "reason", "error", "predict", "label")
    if records:
        rows = pd.DataFrame([{t(f"eval.judge.col.{c}", lang): r.get(c) for c in columns} for r in records
                             if isinstance(r, dict)])
    return summary_text, rows


def poll_judge(run_dir: str, lang: str, monitor: Any) -> tuple[Any, ...]:
    """Timer tick, a picked run or a language change: status, progress, mean ± spread and the rows table."""
    import gradio as gr

    from studio.monitor import RunMonitor
    from studio.tabs.monitor import progress_html, table_update

    if not run_dir:
        return (md("eval.judge.msg.idle", lang), progress_html(None, lang), "", gr.update(visible=False),
                gr.Timer(active=False), monitor)
    monitor = monitor or RunMonitor()
    view = monitor.poll(Path(run_dir))
    state = view.state if view.state in ("finished", "failed", "aborted") else "running"
    status = md(f"eval.judge.msg.{state}", lang, error=view.error or "")
    summary, rows = judge_results(Path(run_dir), lang)
    return (status, progress_html(view, lang), summary, table_update(rows),
            gr.Timer(active=view.state in ("running", "new")), monitor)


def pick_judged_run(run: str | None, lang: str, monitor: Any) -> tuple[Any, ...]:
    """A run picked in the Judge picker: show its newest judgment (or nothing yet)."""
    folder = latest_judgment(run)
    return (folder, *poll_judge(folder, lang, None))


def abort_judge(run_dir: str, lang: str) -> str:
    """Stop the judge job (the rows judged so far are kept)."""
    return abort_eval(run_dir, lang)


def wire(ctx: Context) -> None:
    """Start / abort / poll; eval datasets follow the data folder."""
    import gradio as gr

    from studio.tabs.train_data import dataset_choices

    lang = ctx["lang"]
    private = {"api_visibility": "private"}
    form = [ctx[n] for n in ("eval_mode", "model_name", "model_path", "finetuning_type", "checkpoint", "template",
                             "quantization_bit", "task", "n_shot", "eval_lang", "eval_compare", "eval_dataset",
                             "dataset_dir", "eval_cutoff_len", "eval_max_samples", "per_device_eval_batch_size",
                             "eval_max_new_tokens", "eval_top_p", "eval_temperature", "eval_num_beams", "eval_limit",
                             "apply_chat_template")]
    monitor = gr.State(None)
    ctx["eval_start_button"].click(start_eval, [lang, *form],
                                   [ctx["eval_message"], ctx["eval_status"], ctx["eval_run_dir"], ctx["eval_timer"]],
                                   **private)
    ctx["eval_abort_button"].click(abort_eval, [ctx["eval_run_dir"], lang], ctx["eval_status"], **private)
    outputs = [ctx["eval_status"], ctx["eval_progress"], ctx["eval_results"], ctx["eval_predictions"],
               ctx["eval_timer"], monitor, ctx["job_ended"], ctx["eval_chart"]]
    inputs = [ctx["eval_run_dir"], lang, ctx["eval_page"], monitor, ctx["eval_compare_runs"]]
    ctx["eval_timer"].tick(poll_eval, inputs, outputs, **private)
    ctx["eval_page"].change(poll_eval, inputs, outputs, **private)
    ctx["eval_compare_runs"].input(poll_eval, inputs, outputs, **private)
    lang.change(poll_eval, inputs, outputs, **private)  # texts follow
    for event in (ctx["tab_evaluate"].select, ctx["job_ended"].change):
        event(benchmark_runs, ctx["eval_compare_runs"], ctx["eval_compare_runs"], **private)
    wire_judge(ctx)
    sft = gr.State("sft")
    ctx["dataset_dir"].change(dataset_choices, [ctx["dataset_dir"], sft, lang], ctx["eval_dataset"], **private)
    ctx["tab_evaluate"].select(dataset_choices, [ctx["dataset_dir"], sft, lang], ctx["eval_dataset"], **private)


def wire_judge(ctx: Context) -> None:
    """Judge: the picker follows the runs, Start/Abort, and polling of the judge job's folder."""
    import gradio as gr

    lang = ctx["lang"]
    private = {"api_visibility": "private"}
    monitor = gr.State(None)
    form = [ctx[n] for n in ("judge_run", "judge_base_url", "judge_model", "judge_api_key_env", "judge_scale_min",
                             "judge_scale_max", "judge_max_samples", "judge_concurrency", "judge_rubric")]
    outputs = [ctx["judge_status"], ctx["judge_progress"], ctx["judge_summary"], ctx["judge_rows"],
               ctx["judge_timer"], monitor]
    for event in (ctx["tab_evaluate"].select, ctx["job_ended"].change):
        event(judge_runs, [lang, ctx["judge_run"]], ctx["judge_run"], **private)
    ctx["judge_run"].input(pick_judged_run, [ctx["judge_run"], lang, monitor], [ctx["judge_run_dir"], *outputs],
                           **private)
    ctx["judge_start_button"].click(start_judge, [lang, *form], [ctx["judge_message"], ctx["judge_status"],
                                                                  ctx["judge_run_dir"], ctx["judge_timer"]],
                                    **private)
    ctx["judge_abort_button"].click(abort_judge, [ctx["judge_run_dir"], lang], ctx["judge_status"], **private)
    ctx["judge_timer"].tick(poll_judge, [ctx["judge_run_dir"], lang, monitor], outputs, **private)
    lang.change(poll_judge, [ctx["judge_run_dir"], lang, monitor], outputs, **private)
