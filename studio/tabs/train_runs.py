"""The runs list: every run under saves/ with its status; compare curves, resume or delete a run. Sweeps: the Train
tab's Start sweep queues one run per combination of values, and the comparison shows a sweep's runs side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import StudioError
from studio import queue
from studio.context import Context
from studio.i18n import plot_titles, t
from studio.markup import html_error, md, md_error, show_warning
from studio.sweeps import SWEEP_MAX_RUNS, check_size, new_sweep_id, parse_sweep, queue_sweep, sweep_limit
from studio.tabs.monitor import form_devices
from studio.tabs.train import FORM_FIELDS
from studio.widgets import launch_env


def build(ctx: Context) -> None:
    """Table of runs, a picker, and compare / resume / delete with confirmation."""
    import gradio as gr

    lang = ctx.lang
    with gr.Accordion(t("runs.group.label", lang), open=False, elem_id="group_runs") as group:
        ctx.add("group_runs", group, key="runs.group", kind="accordion")
        ctx.add("runs_table", gr.Dataframe(interactive=False, elem_id="runs_table", wrap=True),
                key="runs.table", kind="plot")
        with gr.Row():
            ctx.add("runs_pick", gr.Dropdown(choices=[], value=[], multiselect=True, elem_id="runs_pick", scale=4,
                                             label=t("runs.pick.label", lang), interactive=True), key="runs.pick")
            ctx.add("runs_confirm", gr.Checkbox(value=False, label=t("runs.confirm.label", lang),
                                                elem_id="runs_confirm", interactive=True), key="runs.confirm")
        with gr.Row():
            for name in ("runs_refresh", "runs_compare", "runs_resume", "runs_download", "runs_delete"):
                ctx.add(name, gr.Button(t(f"runs.{name}.label", lang), elem_id=name,
                                        variant="stop" if name == "runs_delete" else "secondary"),
                        key=f"runs.{name}", kind="button")
        ctx.add("runs_message", gr.Markdown("", elem_id="runs_message"))
        ctx.add("runs_file", gr.File(visible=False, interactive=False, elem_id="runs_file",
                                     label=t("runs.file.label", lang)), key="runs.file")
        ctx.add("runs_plot", gr.LinePlot(x="step", y="value", color="series", elem_id="runs_plot",
                                         label=t("runs.plot.label", lang), **plot_titles("runs.plot", lang)),
                key="runs.plot", kind="plot")
        _build_sweeps(ctx)


def _build_sweeps(ctx: Context) -> None:
    """The sweep comparison: a sweep picker, its runs side by side (best marked) and their losses on one chart."""
    import gradio as gr

    lang = ctx.lang
    with gr.Row():
        ctx.add("sweep_pick", gr.Dropdown(choices=[], value=None, elem_id="sweep_pick", scale=4, interactive=True,
                                          label=t("runs.sweep_pick.label", lang)), key="runs.sweep_pick")
        ctx.add("sweep_compare", gr.Button(t("runs.sweep_compare.label", lang), elem_id="sweep_compare"),
                key="runs.sweep_compare", kind="button")
    ctx.add("sweep_message", gr.Markdown("", elem_id="sweep_message"), key="runs.sweep_message")
    ctx.add("sweep_table", gr.Dataframe(interactive=False, elem_id="sweep_table", wrap=True,
                                        label=t("runs.sweep_table.label", lang)), key="runs.sweep_table", kind="plot")
    ctx.add("sweep_plot", gr.LinePlot(x="step", y="value", color="series", elem_id="sweep_plot",
                                      label=t("runs.sweep_plot.label", lang), **plot_titles("runs.sweep_plot", lang)),
            key="runs.sweep_plot", kind="plot")


def refresh_runs(lang: str) -> tuple[Any, Any]:
    """Re-read saves/ → (table, picker choices)."""
    import gradio as gr

    from studio.runs import list_runs, runs_table

    runs = list_runs()
    return runs_table(runs, lang), gr.update(choices=[str(r["path"]) for r in runs])


def refresh_sweeps() -> Any:
    """Re-read saves/ → the sweep picker's choices (the sweeps whose runs hold a sweep record)."""
    import gradio as gr

    from studio.sweeps import find_sweeps
    from studio.workspace import saves_dir

    return gr.update(choices=list(find_sweeps(saves_dir())))


def compare_sweep(sweep_id: str | None, lang: str) -> tuple[Any, Any, str]:
    """(sweep id, language) → its runs as a table (best marked ★), their losses on one chart, and which is best."""
    from studio.sweeps import compare_runs as compare_sweep_runs
    from studio.sweeps import comparison_table, find_sweeps, sweep_chart
    from studio.workspace import saves_dir

    run_dirs = find_sweeps(saves_dir()).get(sweep_id or "")
    if not run_dirs:
        return None, None, t("runs.pick_sweep_first", lang)
    frame = compare_sweep_runs(run_dirs)
    best = frame.loc[frame["best"], "name"].tolist()
    message = md("runs.sweep_best", lang, name=best[0]) if best else md("runs.sweep_no_best", lang)
    return comparison_table(frame, lang), sweep_chart(frame, run_dirs), message


def redraw_sweep(sweep_id: str | None, lang: str) -> tuple[Any, Any, Any]:
    """The language changed → the picked sweep's comparison again in it (nothing while no sweep is picked)."""
    import gradio as gr

    return compare_sweep(sweep_id, lang) if sweep_id else (gr.update(), gr.update(), gr.update())


def compare_runs(picked: list[str], lang: str) -> tuple[Any, str]:
    """The loss curves of the picked runs on one chart."""
    from studio.runs import overlay_losses
    from studio.workspace import check_inside

    if not picked:
        return None, t("runs.pick_first", lang)
    try:
        return overlay_losses([check_inside(p) for p in picked]), ""
    except StudioError as err:
        return None, f"❌ {md_error(err, lang)}"


def resume_picked(picked: list[str], lang: str) -> tuple[str, str, Any]:
    """Resume the one picked run from its last checkpoint (same folder, same settings)."""
    import gradio as gr

    from studio.runner import start_run
    from studio.runs import resume_config

    if len(picked or []) != 1:
        return t("runs.pick_one", lang), gr.update(), gr.Timer(active=False)
    from studio.workspace import check_inside

    try:
        config = resume_config(check_inside(picked[0]))
        start_run(config, Path(picked[0]), lang=lang)
    except StudioError as err:
        return f"❌ {md_error(err, lang)}", gr.update(), gr.Timer(active=False)
    return md("runs.resumed", lang, path=picked[0]), picked[0], gr.Timer(active=True)


def delete_picked(picked: list[str], confirmed: bool, lang: str) -> tuple[str, Any]:
    """Delete the picked runs, only after the confirmation box is ticked."""
    import gradio as gr

    from studio.runs import delete_run

    if not picked:
        return t("runs.pick_first", lang), gr.update()
    if not confirmed:
        return t("runs.confirm_first", lang), gr.update()
    try:
        for path in picked:
            delete_run(Path(path))
    except StudioError as err:
        return f"❌ {md_error(err, lang)}", gr.update()
    return t("runs.deleted", lang, count=len(picked)), gr.update(value=False)


def download_picked(picked: list[str], lang: str) -> tuple[str, Any]:
    """Zip the one picked finished run (adapter or weights, tokenizer, template, logs) for the browser to save."""
    import gradio as gr

    from studio.runs import new_download_dir, pack_run
    from studio.workspace import check_inside

    if len(picked or []) != 1:
        return t("runs.pick_one_download", lang), gr.update(visible=False, value=None)
    try:
        run_dir = check_inside(picked[0])
        archive = pack_run(run_dir, new_download_dir())
    except StudioError as err:
        return f"❌ {md_error(err, lang)}", gr.update(visible=False, value=None)
    return md("runs.download_ready", lang, name=archive.name), gr.update(visible=True, value=str(archive))


def wire(ctx: Context) -> None:
    """Buttons of the runs list."""
    lang = ctx["lang"]
    private = {"api_visibility": "private"}
    listing = [ctx["runs_table"], ctx["runs_pick"]]
    ctx["runs_refresh"].click(refresh_runs, lang, listing, **private)
    ctx["group_runs"].expand(refresh_runs, lang, listing, **private)
    sweeps = [ctx["sweep_table"], ctx["sweep_plot"], ctx["sweep_message"]]
    ctx["runs_refresh"].click(refresh_sweeps, None, ctx["sweep_pick"], **private)
    ctx["group_runs"].expand(refresh_sweeps, None, ctx["sweep_pick"], **private)
    ctx["sweep_compare"].click(compare_sweep, [ctx["sweep_pick"], lang], sweeps, **private)
    ctx["sweep_pick"].input(compare_sweep, [ctx["sweep_pick"], lang], sweeps, **private)
    lang.change(redraw_sweep, [ctx["sweep_pick"], lang], sweeps, **private)
    ctx["runs_compare"].click(compare_runs, [ctx["runs_pick"], lang], [ctx["runs_plot"], ctx["runs_message"]],
                              **private)
    ctx["runs_resume"].click(resume_picked, [ctx["runs_pick"], lang],
                             [ctx["runs_message"], ctx["run_dir"], ctx["timer"]], **private)
    ctx["runs_download"].click(download_picked, [ctx["runs_pick"], lang], [ctx["runs_message"], ctx["runs_file"]],
                               **private)
    ctx["runs_delete"].click(delete_picked, [ctx["runs_pick"], ctx["runs_confirm"], lang],
                             [ctx["runs_message"], ctx["runs_confirm"]], **private).then(
        refresh_runs, lang, listing, **private)
    _wire_sweep(ctx)


def _wire_sweep(ctx: Context) -> None:
    """The Train tab's Sweep group: the run count follows the spec as it is typed (and the language); Start sweep
    queues the runs."""
    private = {"api_visibility": "private"}
    spec, lang = ctx["sweep_spec"], ctx["lang"]
    # Every keystroke asks; the last text typed is always answered (the default drops events while one runs).
    spec.change(sweep_count_text, [spec, lang], ctx["sweep_count"], show_progress="hidden",
                trigger_mode="always_last", **private)
    lang.change(sweep_count_text, [spec, lang], ctx["sweep_count"], **private)
    ctx["sweep_start"].click(start_sweep, [lang, spec, *(ctx[name] for name in FORM_FIELDS)],
                             [ctx["start_message"], ctx["run_dir"], ctx["timer"]], **private).then(
        refresh_sweeps, None, ctx["sweep_pick"], **private)


def _sweep_limit() -> tuple[int, bool]:
    """(the most runs a sweep may queue now, whether a public demo's allowance set it): in a demo, the visitor's
    runs-at-once limit less their live and queued runs."""
    from studio import demo_mode
    from studio.workspace import saves_dir

    settings = demo_mode.active()
    if settings is None:
        return SWEEP_MAX_RUNS, False
    used = len(queue.find_live_runs(saves_dir())) + len(queue.list_queue())  # a visitor sees only their entries
    return sweep_limit(settings.runs_per_visitor - used), True


def sweep_count_text(spec_text: str, lang: str) -> str:
    """(spec text, language) → "N runs", or why the spec cannot run (a bad line, too many runs); "" when empty."""
    if not (spec_text or "").strip():
        return ""
    try:
        spec = parse_sweep(spec_text)
        if not spec:
            return ""
        limit, demo = _sweep_limit()
        count = check_size(spec, limit, demo=demo)
    except StudioError as err:
        return f"❌ {md_error(err, lang)}"
    return md("train.sweep_count.one" if count == 1 else "train.sweep_count.other", lang, count=count)


def start_sweep(lang: str, spec_text: str, *values: Any) -> tuple[Any, ...]:
    """(language, spec text, the form's values in FORM_FIELDS order) → (message, run folder, timer): one run per
    combination of the spec's values is queued on the form's devices, named `<run name>-<values>` (the run name, or
    a new sweep id, names the sweep); the queue starts them in turn and the page follows the first. A refusal
    changes only the message."""
    import gradio as gr

    from studio.config_builder import build_train_config, check_new_run

    form = dict(zip(FORM_FIELDS, values, strict=True))
    try:
        spec = parse_sweep(spec_text)
        limit, demo = _sweep_limit()
        check_size(spec, limit, demo=demo)
        name = (form.get("run_name") or "").strip() or new_sweep_id()
        config, run_dir = build_train_config(form, run_name=name)
        queued = queue_sweep(config, run_dir, spec, enqueue=queue.enqueue_run, lang=lang, limit=limit,
                             check_new=check_new_run, devices=form_devices(form), env=launch_env(form))
    except StudioError as err:
        show_warning(html_error(err, lang), lang)
        return f"❌ {md_error(err, lang)}", gr.update(), gr.update()
    queue.dispatch()  # the first run starts now when its devices are free
    message = md("train.msg.sweep_queued", lang, count=len(queued), sweep=run_dir.name)
    return message, str(queued[0]), gr.Timer(active=True)
