"""Every list a page shows that depends on files (the Train and Evaluate dataset lists, All runs, Continue from,
reward models) comes from one handler, run on page load in every mode, after an upload is registered, when a job
the page follows ends and when the language changes: a list filled only when the page was built, or by one event,
goes stale after a reload.
"""

from __future__ import annotations

from typing import Any

from engine.errors import StudioError
from engine.runfolder import FINAL_STATES
from studio.context import Context
from studio.markup import html_error, show_warning

LIST_NAMES = ("dataset", "eval_dataset", "runs_table", "runs_pick", "checkpoint", "reward_model")
INPUT_NAMES = ("dataset_dir", "stage", "lang", "model_name", "model_path", "finetuning_type")


def refresh_lists(dataset_dir: str, stage: str, lang: str, model_name: str, model_path: str,
                  method: str) -> tuple[Any, ...]:
    """The form's dataset folder, stage, language, model and method → new choices for every list in LIST_NAMES
    (values are left as they are); a broken registry is reported once and empties both dataset lists."""
    import gradio as gr

    from studio.datasets import dataset_picker
    from studio.runs import list_runs, reward_model_runs, runs_table
    from studio.tabs.top import checkpoint_choices
    from studio.workspace import dataset_dir as workspace_dataset_dir

    try:
        folder = workspace_dataset_dir(dataset_dir)
        datasets, eval_datasets = dataset_picker(folder, stage or "sft", lang), dataset_picker(folder, "sft", lang)
    except StudioError as err:
        show_warning(html_error(err, lang), lang)
        datasets = eval_datasets = []
    runs = list_runs()
    return (gr.update(choices=datasets), gr.update(choices=eval_datasets), runs_table(runs, lang),
            gr.update(choices=[str(run["path"]) for run in runs]),
            gr.update(choices=checkpoint_choices(model_name, model_path, method)),
            gr.update(choices=reward_model_runs(runs=runs)))


def job_ended(run_dir: str, state: str) -> Any:
    """For a tab's poll: `run folder|state` once the job it follows has ended (the lists then refresh), else no
    change."""
    import gradio as gr

    return f"{run_dir}|{state}" if run_dir and state in FINAL_STATES else gr.skip()


def refresh_after(ctx: Context, event: Any) -> Any:
    """Refresh every list once `event` (an upload's registration) is done."""
    return event.then(refresh_lists, [ctx[name] for name in INPUT_NAMES], [ctx[name] for name in LIST_NAMES],
                      api_visibility="private")


def build(ctx: Context) -> None:
    """The marker the tabs' polls set when a followed job ends."""
    import gradio as gr

    ctx.add("job_ended", gr.State(""))


def wire(ctx: Context, demo: Any) -> None:
    """Refresh the lists on page load, whenever a followed job ends, and when the language changes (the runs table's
    headers, job kinds and states are in words)."""
    inputs = [ctx[name] for name in INPUT_NAMES]
    outputs = [ctx[name] for name in LIST_NAMES]
    demo.load(refresh_lists, inputs, outputs, api_visibility="private")
    ctx["job_ended"].change(refresh_lists, inputs, outputs, api_visibility="private")
    ctx["lang"].change(refresh_lists, inputs, outputs, api_visibility="private")
