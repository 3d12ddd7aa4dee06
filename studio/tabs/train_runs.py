"""The runs list: every run under saves/ with its status; compare curves, resume or delete a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import StudioError
from studio.context import Context
from studio.i18n import plot_titles, t
from studio.markup import md, md_error


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


def refresh_runs(lang: str) -> tuple[Any, Any]:
    """Re-read saves/ → (table, picker choices)."""
    import gradio as gr

    from studio.runs import list_runs, runs_table

    runs = list_runs()
    return runs_table(runs, lang), gr.update(choices=[str(r["path"]) for r in runs])


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
    ctx["runs_compare"].click(compare_runs, [ctx["runs_pick"], lang], [ctx["runs_plot"], ctx["runs_message"]],
                              **private)
    ctx["runs_resume"].click(resume_picked, [ctx["runs_pick"], lang],
                             [ctx["runs_message"], ctx["run_dir"], ctx["timer"]], **private)
    ctx["runs_download"].click(download_picked, [ctx["runs_pick"], lang], [ctx["runs_message"], ctx["runs_file"]],
                               **private)
    ctx["runs_delete"].click(delete_picked, [ctx["runs_pick"], ctx["runs_confirm"], lang],
                             [ctx["runs_message"], ctx["runs_confirm"]], **private).then(
        refresh_runs, lang, listing, **private)
