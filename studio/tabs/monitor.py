"""The Train tab's live monitor and actions: start, abort, preview, save/load settings, reattach after a reload."""

from __future__ import annotations

import html
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from engine.errors import Setting, StudioError
from studio.context import Context
from studio.i18n import plot_titles, t
from studio.markup import html_error, html_text, md_error, show_info, show_warning
from studio.monitor import RunMonitor, chart_frame, metric_choices, status_markdown, thin_frame
from studio.queue import cancel, dispatch, find_entry, list_queue, move, position_and_expected_start
from studio.run_texts import readable_log
from studio.tabs.file_lists import job_ended
from studio.tabs.train import FORM_FIELDS
from studio.widgets import launch_env

TIMER_SECONDS = 1.0


def build(ctx: Context) -> None:
    """Status line, progress bar, loss and metric charts, and the log tail."""
    import gradio as gr

    lang = ctx.lang
    # What became of the last Start (a refusal, and why) apart from the run's own status, which the timer
    # rewrites every second: a refusal stays readable, and the run shown keeps being followed.
    ctx.add("start_message", gr.Markdown("", elem_id="start_message"))
    ctx.add("status", gr.Markdown(t("train.msg.no_run", lang), elem_id="status"))
    ctx.add("progress", gr.HTML(progress_html(None, lang), elem_id="progress"))
    # The charts take the height they need: with a fixed height Gradio cuts off the legend under the plot, which
    # says which line is which.
    with gr.Row():
        ctx.add("loss_plot", gr.LinePlot(x="step", y="value", color="series", label=t("train.loss_plot.label", lang),
                                         elem_id="loss_plot", **plot_titles("train.loss_plot", lang)),
                key="train.loss_plot", kind="plot")
        with gr.Column():
            ctx.add("metric_pick", gr.Dropdown(choices=metric_choices(["lr"], lang), value="lr", elem_id="metric_pick",
                                               interactive=True, label=t("train.metric_pick.label", lang)),
                    key="train.metric_pick")
            ctx.add("metrics_plot", gr.LinePlot(x="step", y="value", color="series", elem_id="metrics_plot",
                                                label=t("train.metrics_plot.label", lang),
                                                **plot_titles("train.metrics_plot", lang)),
                    key="train.metrics_plot", kind="plot")
    with gr.Row():
        ctx.add("log", gr.Textbox(label=t("train.log.label", lang), lines=8, max_lines=12, elem_id="log",
                                  interactive=False, autoscroll=True), key="train.log", kind="plot")
        ctx.add("command", gr.Code(label=t("train.command.label", lang), language="yaml", elem_id="command",
                                   interactive=False, visible=False), key="train.command", kind="plot")
    build_queue(ctx)
    ctx.add("run_dir", gr.State(""))
    ctx.add("timer", gr.Timer(TIMER_SECONDS, active=False))


def build_queue(ctx: Context) -> None:
    """The queue panel: waiting jobs (this visitor's own in the demo) with Up / Down / Cancel."""
    import gradio as gr

    lang = ctx.lang
    with gr.Accordion(t("queue.group.label", lang), open=False, elem_id="group_queue") as group:
        ctx.add("group_queue", group, key="queue.group", kind="accordion")
        ctx.add("queue_table", gr.Dataframe(interactive=False, elem_id="queue_table", wrap=True,
                                            label=t("queue.group.label", lang)), key="queue.group", kind="plot")
        with gr.Row():
            ctx.add("queue_pick", gr.Dropdown(choices=[], value=None, elem_id="queue_pick", scale=4, interactive=True,
                                              label=t("queue.pick.label", lang)), key="queue.pick")
            for name in ("queue_up", "queue_down", "queue_cancel", "queue_refresh"):
                ctx.add(name, gr.Button(t(f"queue.{name}.label", lang), elem_id=name,
                                        variant="stop" if name == "queue_cancel" else "secondary"),
                        key=f"queue.{name}", kind="button")


def progress_html(view: Any, lang: str) -> str:
    """A progress bar with step/total, elapsed and remaining time."""
    if view is None or not view.total_steps:
        percent, text = 0.0, t("train.msg.progress_idle", lang)
    else:
        # A finished run's last logged step can precede its last step (logging_steps): the bar shows it complete.
        done = getattr(view, "state", None) == "finished"
        percent = 100.0 if done else float(view.percentage or 0.0)
        text = t("train.msg.progress", lang, current=view.total_steps if done else view.current_steps,
                 total=view.total_steps,
                 percent=f"{percent:.0f}", elapsed=view.elapsed or "0:00:00", remaining=view.remaining or "0:00:00")
    return (f'<div class="studio-progress"><div class="studio-progress-bar" style="width:{percent:.1f}%"></div>'
            f'<span class="studio-progress-text">{html.escape(text)}</span></div>')


def _form(values: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(FORM_FIELDS, values, strict=True))


def preview_command(lang: str, *values: Any) -> Any:
    """Form → the YAML config and the command that would run it (shown, nothing started)."""
    import gradio as gr

    from studio.config_builder import build_train_config

    try:
        config, run_dir = build_train_config(_form(values))
    except StudioError as err:
        show_warning(html_error(err, lang), lang)
        return gr.update()
    text = f"# studio train {run_dir / 'config.yaml'}\n" + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    return gr.update(value=text, visible=True)


def table_update(frame: Any) -> Any:
    """A results table's update: shown with its rows, hidden while there are none."""
    import gradio as gr

    return gr.update(value=frame, visible=True) if frame is not None and len(frame) else gr.update(visible=False)


def launch_job(command: str, build: Any, starting_key: str, lang: str, values: tuple[Any, ...],
               devices: list[int] | None = None, env: dict[str, str] | None = None) -> tuple[Any, ...]:
    """Build a job's config from form values, validate and launch it (or queue it while the machine is busy).

    Returns (message, status, run folder, timer): a refusal fills only the message, so the run the page follows
    (a live one included) stays on screen and keeps updating; a start clears it and follows the new run; a queued
    job says its place in the queue and is followed until it starts.
    """
    import gradio as gr

    from studio.runner import start_run

    try:
        config, run_dir = build(*values)
        answer = start_run(config, run_dir, lang=lang, command=command, devices=devices, env=env)
    except StudioError as err:
        show_warning(html_error(err, lang), lang)
        return f"❌ {md_error(err, lang)}", gr.update(), gr.update(), gr.update()
    if answer.get("state") == "queued":
        # The status line says it (and the timer keeps its place and expected start current).
        return "", queued_text(answer["position"], answer.get("expected_start"), lang), str(run_dir), gr.Timer(active=True)
    if answer.get("state") == "refused":
        return f"❌ {html.escape(str(answer.get('message') or ''))}", gr.update(), gr.update(), gr.update()
    return "", t(starting_key, lang), str(run_dir), gr.Timer(active=True)


def queued_text(position: int, expected_start: float | None, lang: str) -> str:
    """"Queued, position N" with the expected start time when the running jobs' remaining time tells it."""
    if expected_start is None:
        return t("queue.msg.queued", lang, position=position)
    when = time.strftime("%H:%M", time.localtime(expected_start))
    return t("queue.msg.queued_at", lang, position=position, time=when)


def form_devices(form: dict[str, Any]) -> list[int] | None:
    """The GPU indices the device picker chose (`devices`: index strings; empty means automatic)."""
    return [int(d) for d in form.get("devices") or []] or None


def start_training(lang: str, *values: Any) -> tuple[Any, ...]:
    """Form → validate (same checks as the CLI) → write config.yaml → launch the engine; start polling."""
    from studio.config_builder import build_train_config, check_new_run

    def build(*form_values: Any) -> tuple[dict[str, Any], Path]:
        config, run_dir = build_train_config(_form(form_values))
        check_new_run(config, run_dir)
        return config, run_dir

    form = _form(values)
    if (form.get("ray_address") or "").strip():
        return send_to_ray(build, form["ray_address"].strip(), lang, values)
    return launch_job("train", build, "train.msg.starting", lang, values, devices=form_devices(form),
                      env=launch_env(form))


def send_to_ray(build: Any, address: str, lang: str, values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Form → a run sent to the Ray cluster at `address` (its run folder on storage both sides see), followed like a
    local run. The public demo never connects to an address a visitor typed."""
    import gradio as gr

    from engine.config import config_from_dict, save_config
    from engine.validation import validate_config
    from studio import demo_mode
    from studio.ray_jobs import submit_ray_job

    try:
        if demo_mode.active() is not None:
            raise StudioError("demo_key_not_allowed", setting=Setting("ray_address"))
        config, run_dir = build(*values)
        checked = validate_config(config_from_dict(config, source="the studio settings"))
        save_config(checked, Path(run_dir) / "config.yaml")
        answer = submit_ray_job(Path(run_dir) / "config.yaml", run_dir, address)
    except StudioError as err:
        show_warning(html_error(err, lang), lang)
        return f"❌ {md_error(err, lang)}", gr.update(), gr.update(), gr.update()
    return "", t("train.msg.sent_to_ray", lang, job=answer["job_id"], address=address), str(run_dir), \
        gr.Timer(active=True)


def abort_training(run_dir: str, lang: str) -> str:
    """Ask the running engine to save a checkpoint and stop."""
    from studio import ray_jobs
    from studio.runner import abort_run

    if run_dir and ray_jobs.read_job(run_dir):  # a run sent to a Ray cluster: Ray stops its driver
        return t("train.msg.aborting" if ray_jobs.stop(run_dir) else "train.msg.nothing_to_abort", lang)
    waiting = bool(run_dir) and find_entry(run_dir) is not None  # Abort takes a waiting run out of the queue
    if run_dir and abort_run(Path(run_dir)):
        return t("queue.msg.cancelled" if waiting else "train.msg.aborting", lang)
    return t("train.msg.nothing_to_abort", lang)


QUEUE_COLUMNS = ("position", "name", "kind", "devices", "start", "note")


def queue_rows(lang: str) -> tuple[Any, list[tuple[str, str]]]:
    """The waiting jobs (and recently refused ones, with why) as a table, and (label, entry id) picker choices."""
    import pandas as pd

    rows, choices = [], []
    for entry in list_queue(include_ended=True):
        if entry["state"] == "cancelled":
            continue
        name = Path(entry["run_dir"]).name
        devices = entry.get("devices")
        shown = (t("queue.devices.auto", lang) if devices is None
                 else str(devices) if isinstance(devices, int) else ",".join(map(str, devices)))
        if entry["state"] == "queued":
            position, expected = position_and_expected_start(entry)
            start = time.strftime("%H:%M", time.localtime(expected)) if expected else "?"
            choices.append((f"{position}. {name}", entry["id"]))
        else:
            position, start = "", t("monitor.state.failed", lang)
        rows.append([position, name, t(f"runs.kind.{entry['kind']}", lang), shown, start, entry.get("message") or ""])
    headers = [t(f"queue.column.{column}", lang) for column in QUEUE_COLUMNS]
    return pd.DataFrame(rows, columns=headers), choices


def queue_listing(lang: str, picked: str | None = None) -> tuple[Any, Any]:
    """Re-read the queue → (table, picker keeping the picked job while it still waits)."""
    import gradio as gr

    frame, choices = queue_rows(lang)
    return frame, gr.update(choices=choices, value=picked if picked in [c[1] for c in choices] else None)


def refresh_queue(lang: str) -> tuple[Any, Any]:
    """Re-read the queue → (table, picker); says so when no job is waiting."""
    frame, picker = queue_listing(lang)
    if not picker["choices"]:
        show_info(html_text("queue.empty", lang), lang)
    return frame, picker


def move_queued(entry_id: str | None, where: str, lang: str) -> None:
    """Move the picked waiting job `up`, `down` or to the `top` (a toast says what happened)."""
    if not entry_id:
        return show_warning(html_text("queue.pick_first", lang), lang)
    try:
        move(entry_id, where)
    except StudioError as err:
        return show_warning(html_error(err, lang), lang)
    show_info(html_text("queue.msg.moved", lang), lang)


def move_up(entry_id: str | None, lang: str) -> None:
    """Up button: the picked waiting job one place earlier."""
    move_queued(entry_id, "up", lang)


def move_down(entry_id: str | None, lang: str) -> None:
    """Down button: the picked waiting job one place later."""
    move_queued(entry_id, "down", lang)


def cancel_queued(entry_id: str | None, lang: str) -> None:
    """Cancel button: take the picked job out of the queue (its folder keeps the settings)."""
    if not entry_id:
        return show_warning(html_text("queue.pick_first", lang), lang)
    try:
        cancel(entry_id)
    except StudioError as err:
        return show_warning(html_error(err, lang), lang)
    show_info(html_text("queue.msg.cancelled", lang), lang)


class MonitorSession:
    """One page's monitor: the run-folder reader, and what the page's charts, metric picker and log were last sent.

    A tick re-sends only what changed: a long run's curves hold thousands of points, and serialising and redrawing
    them every second left the page seconds behind the run.
    """

    def __init__(self) -> None:
        self.monitor = RunMonitor()
        self._sent: dict[str, tuple[Any, ...]] = {}
        self._lock = threading.Lock()

    def changed(self, output: str, *key: Any) -> bool:
        """Whether `output` must be sent for `key`, which is then remembered as sent. Texts and tuples compare by
        value, anything else (the run monitor's frames, replaced only when lines were appended) by identity."""
        with self._lock:
            last = self._sent.get(output)
            if last is not None and len(last) == len(key) and all(map(_same, last, key)):
                return False
            self._sent[output] = key
            return True


def _same(a: Any, b: Any) -> bool:
    return a is b or (isinstance(a, (str, tuple)) and type(a) is type(b) and a == b)


def poll(run_dir: str, lang: str, metric: str, session: MonitorSession | None) -> tuple[Any, ...]:
    """Timer tick: read the run folder and refresh status, progress, charts and log; stop polling at the end.

    The metric chart shows one chosen series at a time (learning rate, grad norm and throughput differ by orders
    of magnitude); its choices grow as the run logs new metrics. Charts, picker and log are sent only when they
    changed since this page's last poll, and a long run's curves are thinned to what a chart can show.
    """
    import gradio as gr


    if not run_dir:  # nothing to show: the idle texts (in the current language)
        return (t("train.msg.no_run", lang), progress_html(None, lang), gr.update(), gr.update(), gr.update(),
                gr.update(), gr.Timer(active=False), session, gr.skip(), gr.update(variant="secondary"))
    session = session if isinstance(session, MonitorSession) else MonitorSession()
    dispatch()  # a job that ended frees its devices: the next queued one starts (a no-op while none waits)
    view = session.monitor.poll(Path(run_dir))
    live = view.state in ("running", "new")
    names = tuple(view.metrics["series"].unique()) or ("lr",)
    metric = metric if metric in names else names[0]
    skip = gr.skip()
    # Series names, picker choices and the log are in `lang`: a language switch re-sends them.
    loss = thin_frame(chart_frame(view.loss, lang)) if session.changed("loss", run_dir, view.loss, lang) else skip
    chosen = (thin_frame(chart_frame(view.metrics[view.metrics["series"] == metric], lang))
              if session.changed("metrics", run_dir, view.metrics, metric, lang) else skip)
    picker = (gr.update(choices=metric_choices(list(names), lang), value=metric)
              if session.changed("picker", names, metric, lang) else skip)
    log = readable_log(view.log_tail, lang) if session.changed("log", view.log_tail, lang) else skip
    # Abort turns red only while there is something to abort: a red button on an idle page reads as an alarm.
    abort = gr.update(variant="stop" if live else "secondary") if session.changed("abort", live) else skip
    entry = find_entry(run_dir) if view.state == "new" else None
    status = queued_text(*position_and_expected_start(entry), lang) if entry else status_markdown(view, lang)
    return (status, progress_html(view, lang), loss, chosen, picker, log, gr.Timer(active=live),
            session, job_ended(run_dir, view.state), abort)


def reattach(lang: str) -> tuple[str, Any]:
    """After a page load: the live training run if there is one (else the newest training run), and whether to
    poll. Evaluations and exports have tabs of their own."""
    import gradio as gr

    from studio.runner import find_live_runs
    from studio.runs import job_kind, list_runs

    live = [run_dir for run_dir in find_live_runs() if job_kind(run_dir) == "train"]
    if live:
        return str(live[0]), gr.Timer(active=True)
    runs = list_runs(kind="train")
    return (str(runs[0]["path"]), gr.Timer(active=True)) if runs else ("", gr.Timer(active=False))


def on_page_load(lang: str) -> tuple[Any, ...]:
    """Page loaded → a fresh run name, the run to follow and whether to poll it (the queue moves on first, in case
    a job ended while no page was open)."""
    dispatch()
    return (fresh_run_name(), *reattach(lang))


def fresh_run_name() -> str:
    """A timestamped default run name for a newly opened page."""
    from studio.runs import default_run_name

    return default_run_name()


def settings_path(name: str) -> Path:
    """Where the form's settings are saved under a name (kept as typed, as run names are; blank: `default`)."""
    from studio.runs import folder_name
    from studio.workspace import saves_dir

    return saves_dir() / ".studio" / "settings" / f"{folder_name((name or '').strip() or 'default')}.yaml"


def save_settings(name: str, lang: str, *values: Any) -> None:
    """Keep the whole form under a name (a YAML of widget values)."""

    try:
        path = settings_path(name)
    except StudioError as err:
        show_warning(html_error(err, lang), lang)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(_form(values), sort_keys=False, allow_unicode=True), encoding="utf-8")
    show_info(html_text("train.msg.settings_saved", lang, path=str(path)), lang)


def load_settings(name: str, lang: str) -> list[Any]:
    """Fill the form from settings saved under a name (fields missing there are left as they are)."""
    import gradio as gr

    try:
        path = settings_path(name)
    except StudioError as err:
        show_warning(html_error(err, lang), lang)
        return [gr.update() for _ in FORM_FIELDS]
    if not path.is_file():
        show_warning(html_text("train.msg.settings_missing", lang, path=str(path)), lang)
        return [gr.update() for _ in FORM_FIELDS]
    saved = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return [gr.update(value=saved[name]) if name in saved else gr.update() for name in FORM_FIELDS]


def wire(ctx: Context, demo: Any) -> None:
    """Connect the action buttons, the timer and the page-load reattach."""
    import gradio as gr

    form = [ctx[name] for name in FORM_FIELDS]
    lang = ctx["lang"]
    session = gr.State(None)  # one MonitorSession per page
    outputs = [ctx["status"], ctx["progress"], ctx["loss_plot"], ctx["metrics_plot"], ctx["metric_pick"], ctx["log"],
               ctx["timer"], session, ctx["job_ended"], ctx["abort_button"]]
    private = {"api_visibility": "private"}
    ctx["preview_button"].click(preview_command, [lang, *form], ctx["command"], **private)
    ctx["start_button"].click(start_training, [lang, *form],
                              [ctx["start_message"], ctx["status"], ctx["run_dir"], ctx["timer"]], **private)
    ctx["abort_button"].click(abort_training, [ctx["run_dir"], lang], ctx["status"], **private)
    ctx["save_button"].click(save_settings, [ctx["config_path"], lang, *form], None, **private)
    ctx["load_button"].click(load_settings, [ctx["config_path"], lang], form, **private)
    ctx["timer"].tick(poll, [ctx["run_dir"], lang, ctx["metric_pick"], session], outputs, **private)
    ctx["metric_pick"].input(poll, [ctx["run_dir"], lang, ctx["metric_pick"], session], outputs, **private)
    lang.change(poll, [ctx["run_dir"], lang, ctx["metric_pick"], session], outputs, **private)  # texts follow
    # One load event for both: once the page shows its fresh run name it also follows its run, so a Start pressed
    # right after the page appears cannot be overtaken by a late reattach that points the page at an older run.
    demo.load(on_page_load, [lang], [ctx["run_name"], ctx["run_dir"], ctx["timer"]], **private)
    wire_queue(ctx)


def wire_queue(ctx: Context) -> None:
    """The queue panel: refreshed when opened, after a Start and after each of its buttons."""
    lang = ctx["lang"]
    private = {"api_visibility": "private"}
    listing = [ctx["queue_table"], ctx["queue_pick"]]
    ctx["queue_refresh"].click(refresh_queue, lang, listing, **private)
    for trigger in (ctx["group_queue"].expand, ctx["run_dir"].change, ctx["lang"].change):
        trigger(queue_listing, [lang, ctx["queue_pick"]], listing, **private)
    for name, handler in (("queue_up", move_up), ("queue_down", move_down), ("queue_cancel", cancel_queued)):
        ctx[name].click(handler, [ctx["queue_pick"], lang], None, **private).then(
            queue_listing, [lang, ctx["queue_pick"]], listing, **private)
