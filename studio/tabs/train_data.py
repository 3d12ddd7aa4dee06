"""Bring your own data and look at it as the model will: upload + column mapping, paged rows, masked tokens."""

from __future__ import annotations

from typing import Any

from engine.errors import StudioError
from studio.context import Context
from studio.i18n import t
from studio.markup import html_error, html_text, md, md_error, show_warning
from studio.tabs.file_lists import refresh_after

FORMATTINGS = ["alpaca", "sharegpt", "openai"]
MAPPABLE = ["prompt", "query", "response", "history", "messages", "system", "tools", "chosen", "rejected", "kto_tag"]


def build(ctx: Context) -> None:
    """The upload form and the dataset preview."""
    import gradio as gr

    lang = ctx.lang
    with gr.Accordion(t("data.preview_group.label", lang), open=False, elem_id="group_preview") as preview:
        ctx.add("group_preview", preview, key="data.preview_group", kind="accordion")
        with gr.Row():
            ctx.add("preview_index", gr.Number(value=0, precision=0, minimum=0, elem_id="preview_index",
                                               label=t("data.preview_index.label", lang), interactive=True),
                    key="data.preview_index")
            ctx.add("preview_button_data", gr.Button(t("data.preview_button.label", lang), elem_id="preview_data"),
                    key="data.preview_button", kind="button")
        ctx.add("preview_rows", gr.JSON(label=t("data.preview_rows.label", lang), elem_id="preview_rows"),
                key="data.preview_rows", kind="plot")
        ctx.add("preview_render", gr.HTML("", elem_id="preview_render"))
        ctx.add("preview_stats", gr.Markdown("", elem_id="preview_stats"))
        ctx.add("preview_hist", gr.BarPlot(x="bucket", y="count", elem_id="preview_hist", height=220,
                                           label=t("data.preview_hist.label", lang)), key="data.preview_hist",
                kind="plot")
    with gr.Accordion(t("data.upload_group.label", lang), open=False, elem_id="group_upload") as upload:
        ctx.add("group_upload", upload, key="data.upload_group", kind="accordion")
        with gr.Row():
            with gr.Column():
                ctx.add("upload_file", gr.File(label=t("data.upload_file.label", lang), elem_id="upload_file",
                                               file_types=[".json", ".jsonl", ".csv", ".parquet"]),
                        key="data.upload_file", kind="plot")
                # Gradio words its drop area in the browser's language, not the page's (no setting changes it):
                # this line says the same in the page's language.
                ctx.add("upload_hint", gr.Markdown(t("data.upload_hint.label", lang), elem_id="upload_hint"),
                        key="data.upload_hint", kind="markdown")
            with gr.Column():
                ctx.add("upload_name", gr.Textbox(label=t("data.upload_name.label", lang), elem_id="upload_name",
                                                  info=t("data.upload_name.info", lang), interactive=True),
                        key="data.upload_name")
                ctx.add("upload_formatting", gr.Radio(choices=FORMATTINGS, value="alpaca", elem_id="upload_formatting",
                                                      label=t("data.upload_formatting.label", lang),
                                                      info=t("data.upload_formatting.info", lang)),
                        key="data.upload_formatting")
                ctx.add("upload_ranking", gr.Checkbox(value=False, label=t("data.upload_ranking.label", lang),
                                                      elem_id="upload_ranking", interactive=True),
                        key="data.upload_ranking")
        with gr.Row():
            for column in MAPPABLE:
                ctx.add(f"map_{column}", gr.Dropdown(choices=[""], value="", elem_id=f"map_{column}",
                                                     label=t(f"data.map.{column}.label", lang), interactive=True,
                                                     allow_custom_value=True, min_width=120), key=f"data.map.{column}")
        ctx.add("upload_button", gr.Button(t("data.upload_button.label", lang), variant="primary",
                                           elem_id="upload_button"), key="data.upload_button", kind="button")
        ctx.add("upload_message", gr.Markdown("", elem_id="upload_message"))


def dataset_choices(dataset_dir: str, stage: str, lang: str) -> Any:
    """The datasets the chosen stage can use (a broken registry is reported, not raised)."""
    import gradio as gr

    from studio.datasets import dataset_picker
    from studio.workspace import dataset_dir as workspace_dataset_dir

    try:
        return gr.update(choices=dataset_picker(workspace_dataset_dir(dataset_dir), stage, lang))
    except StudioError as err:
        show_warning(html_error(err, lang), lang)
        return gr.update(choices=[])


def on_file(path: str | None, formatting: str, lang: str) -> list[Any]:
    """Uploaded file → detected columns offered in every mapping field, with a best guess selected."""
    import gradio as gr

    from studio.datasets import detect_columns, suggest_mapping
    from studio.demo_mode import active

    if not path:
        return [gr.update(choices=[""], value="") for _ in MAPPABLE] + [""]
    settings = active()
    try:
        columns = detect_columns(path, max_rows=settings.max_samples if settings else None)
    except StudioError as err:
        return [gr.update(choices=[""], value="") for _ in MAPPABLE] + [f"❌ {md_error(err, lang)}"]
    guess = suggest_mapping(columns, formatting)
    updates = [gr.update(choices=["", *columns], value=guess.get(c, "")) for c in MAPPABLE]
    return [*updates, md("data.columns_found", lang, columns=", ".join(columns))]


def register(path: str | None, name: str, formatting: str, ranking: bool, dataset_dir: str, lang: str,
             *mapping: str) -> str:
    """Validate every row and register the uploaded file under `name` in dataset_info.json."""
    from gradio.utils import get_upload_folder

    from studio.datasets import register_upload
    from studio.demo_mode import active, check_upload
    from studio.uploads import discard_upload
    from studio.workspace import dataset_dir as workspace_dataset_dir

    if not path:
        return f"❌ {md('data.no_file', lang)}"
    columns = {column: value for column, value in zip(MAPPABLE, mapping, strict=True) if value}
    settings = active()
    try:
        if settings is not None:
            check_upload(path, settings)
        register_upload(path, workspace_dataset_dir(dataset_dir), (name or "").strip(), formatting, columns,
                        ranking=ranking, max_rows=settings.max_samples if settings else None)
    except StudioError as err:
        return f"❌ {md_error(err, lang)}"
    # The dataset folder has its copy now; the browser's upload would otherwise wait for Gradio's hourly clean-up.
    discard_upload(path, get_upload_folder())
    return md("data.registered", lang, name=name)


def preview(dataset_dir: str, datasets: list[str], model_path: str, template: str, cutoff_len: float,
            index: float, train_on_prompt: bool, mask_history: bool, name: str, author: str, lang: str) -> tuple:
    """The first chosen dataset: a page of raw rows, one row rendered with its loss mask, and length statistics
    (all read in a child process: the studio never loads a dataset)."""
    from studio.data_preview import preview_data
    from studio.demo_mode import active, model_allowed
    from studio.workspace import dataset_dir as workspace_dataset_dir

    if not datasets:
        return None, f"<p>{html_text('data.pick_dataset', lang)}</p>", "", None
    dataset, index = datasets[0], int(index or 0)
    dataset_dir = workspace_dataset_dir(dataset_dir)
    settings = active()
    if settings is not None and not model_allowed(model_path, settings):
        error = StudioError("demo_model_not_allowed", model=str(model_path), allowed=", ".join(settings.models))
        return None, f"<p>❌ {html_error(error, lang)}</p>", "", None
    try:
        shown = preview_data(dataset_dir=str(dataset_dir), dataset=dataset, model_path=model_path,
                             template=template if template != "none" else None, cutoff_len=int(cutoff_len),
                             index=index, train_on_prompt=bool(train_on_prompt), mask_history=bool(mask_history),
                             placeholders={"name": name, "author": author})
    except StudioError as err:
        return None, f"<p>❌ {html_error(err, lang)}</p>", "", None
    if shown.error is not None or shown.stats is None:
        return shown.rows, f"<p>{html_error(shown.error, lang)}</p>" if shown.error else "", "", None
    stats = shown.stats
    summary = md("data.stats", lang, total=shown.total, mean=f"{stats['mean']:.0f}", p95=stats["p95"],
                 max=stats["max"], truncated=stats["truncated"], cutoff=int(cutoff_len))
    return shown.rows, shown.rendered, summary, stats["histogram"]


def wire(ctx: Context) -> None:
    """Dataset choices follow the stage; upload and preview buttons."""
    lang = ctx["lang"]
    private = {"api_visibility": "private"}
    for trigger in ("stage", "dataset_dir"):
        ctx[trigger].change(dataset_choices, [ctx["dataset_dir"], ctx["stage"], lang], ctx["dataset"], **private)
    mapping = [ctx[f"map_{c}"] for c in MAPPABLE]
    ctx["upload_file"].change(on_file, [ctx["upload_file"], ctx["upload_formatting"], lang],
                              [*mapping, ctx["upload_message"]], **private)
    refresh_after(ctx, ctx["upload_button"].click(
        register, [ctx["upload_file"], ctx["upload_name"], ctx["upload_formatting"], ctx["upload_ranking"],
                   ctx["dataset_dir"], lang, *mapping], ctx["upload_message"], **private))
    ctx["preview_button_data"].click(
        preview, [ctx["dataset_dir"], ctx["dataset"], ctx["model_path"], ctx["template"], ctx["cutoff_len"],
                  ctx["preview_index"], ctx["train_on_prompt"], ctx["mask_history"], ctx["identity_name"],
                  ctx["identity_author"], lang],
        [ctx["preview_rows"], ctx["preview_render"], ctx["preview_stats"], ctx["preview_hist"]], **private)
