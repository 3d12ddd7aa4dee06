"""Bring your own data and look at it as the model will: upload + column mapping, paged rows, masked tokens."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from engine.data.media import KINDS
from engine.errors import StudioError
from studio.context import Context
from studio.i18n import t
from studio.markup import html_error, html_text, md, md_error, show_warning
from studio.tabs.file_lists import refresh_after
from studio.uploads import MEDIA_EXTENSIONS, TABLE_EXTENSIONS

FORMATTINGS = ["alpaca", "sharegpt", "openai"]
MAPPABLE = ["prompt", "query", "response", "history", "messages", "system", "tools", "chosen", "rejected", "kto_tag",
            "images", "videos", "audios"]


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
        ctx.add("preview_media", gr.HTML("", elem_id="preview_media"))
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
                                               file_count="multiple",
                                               file_types=[*TABLE_EXTENSIONS, ".zip", *MEDIA_EXTENSIONS]),
                        key="data.upload_file", kind="plot")
                # Gradio words its drop area in the browser's language, not the page's (no setting changes it):
                # this line says the same in the page's language.
                ctx.add("upload_hint", gr.Markdown(t("data.upload_hint.label", lang), elem_id="upload_hint"),
                        key="data.upload_hint", kind="markdown")
                ctx.add("upload_media_hint", gr.Markdown(t("data.upload_media_hint.label", lang),
                                                         elem_id="upload_media_hint"),
                        key="data.upload_media_hint", kind="markdown")
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
        ctx.add("upload_preview", gr.HTML("", elem_id="upload_preview"))


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


def on_file(paths: list[str] | str | None, formatting: str, lang: str) -> list[Any]:
    """Uploaded files (one table, or a zip / several files holding a table and its media) → the table's columns
    offered in every mapping field, with a best guess selected."""
    import gradio as gr

    from studio.datasets import detect_columns, suggest_mapping
    from studio.demo_mode import active, check_upload
    from studio.uploads import is_plain_upload, unpack_limits, unpack_upload

    empty = [gr.update(choices=[""], value="") for _ in MAPPABLE]
    if not paths:
        return [*empty, ""]
    paths = [paths] if isinstance(paths, str) else paths
    settings = active()
    try:
        for path in paths:
            if settings is not None:
                check_upload(path, settings)
        if is_plain_upload(paths):
            columns = detect_columns(paths[0], max_rows=settings.max_samples if settings else None)
        else:
            with tempfile.TemporaryDirectory() as folder:
                table = unpack_upload(paths, Path(folder), unpack_limits(settings), table_only=True)
                columns = detect_columns(table, max_rows=settings.max_samples if settings else None)
    except StudioError as err:
        return [*empty, f"❌ {md_error(err, lang)}"]
    guess = suggest_mapping(columns, formatting)
    updates = [gr.update(choices=["", *columns], value=guess.get(c, "")) for c in MAPPABLE]
    return [*updates, md("data.columns_found", lang, columns=", ".join(columns))]


def register(paths: list[str] | str | None, name: str, formatting: str, ranking: bool, dataset_dir: str, lang: str,
             *mapping: str) -> tuple[str, str]:
    """Validate every row (and, with media, that each file the table names came along), register the upload under
    `name` in dataset_info.json; the message, and the first rows beside their media when it has some."""
    from gradio.utils import get_upload_folder

    from studio.data_preview import media_html, preview_data
    from studio.datasets import register_upload
    from studio.demo_mode import active, check_upload
    from studio.uploads import discard_upload, is_plain_upload, register_media_upload, unpack_limits
    from studio.workspace import dataset_dir as workspace_dataset_dir

    if not paths:
        return f"❌ {md('data.no_file', lang)}", ""
    paths = [paths] if isinstance(paths, str) else paths
    columns = {column: value for column, value in zip(MAPPABLE, mapping, strict=True) if value}
    settings = active()
    folder, name = workspace_dataset_dir(dataset_dir), (name or "").strip()
    max_rows = settings.max_samples if settings else None
    try:
        for path in paths:
            if settings is not None:
                check_upload(path, settings)
        if is_plain_upload(paths):
            register_upload(paths[0], folder, name, formatting, columns, ranking=ranking, max_rows=max_rows)
        else:
            register_media_upload(paths, folder, name, formatting, columns, ranking=ranking, max_rows=max_rows,
                                  limits=unpack_limits(settings))
    except StudioError as err:
        return f"❌ {md_error(err, lang)}", ""
    # The dataset folder has its copy now; the browser's upload would otherwise wait for Gradio's hourly clean-up.
    for path in paths:
        discard_upload(path, get_upload_folder())
    shown = ""
    if any(columns.get(kind) for kind in KINDS):
        try:
            shown = media_html(preview_data(dataset=name, model_path=None, template=None, cutoff_len=1, index=0,
                                            train_on_prompt=False, mask_history=False, placeholders={},
                                            **_media_request(folder, "", settings)).media, lang)
        except StudioError as err:
            shown = f"<p>❌ {html_error(err, lang)}</p>"
    return md("data.registered", lang, name=name), shown


def preview(dataset_dir: str, datasets: list[str], model_path: str, template: str, cutoff_len: float,
            index: float, train_on_prompt: bool, mask_history: bool, name: str, author: str, extra_args: str,
            lang: str) -> tuple:
    """The first chosen dataset: a page of rows beside their images, videos and audio, the raw rows, one row
    rendered with its loss mask, and length statistics (all read in a child process: the studio never loads a
    dataset). Media paths start at `media_dir` from the extra settings when set there."""
    from studio.data_preview import media_html, preview_data
    from studio.demo_mode import active, model_allowed

    if not datasets:
        return None, "", f"<p>{html_text('data.pick_dataset', lang)}</p>", "", None
    dataset, index = datasets[0], int(index or 0)
    settings = active()
    try:
        if settings is not None and not model_allowed(model_path, settings):
            raise StudioError("demo_model_not_allowed", model=str(model_path), allowed=", ".join(settings.models))
        shown = preview_data(dataset=dataset, model_path=model_path, template=template if template != "none" else None,
                             cutoff_len=int(cutoff_len), index=index, train_on_prompt=bool(train_on_prompt),
                             mask_history=bool(mask_history), placeholders={"name": name, "author": author},
                             **_media_request(dataset_dir, extra_args, settings))
    except StudioError as err:
        return None, "", f"<p>❌ {html_error(err, lang)}</p>", "", None
    media = media_html(shown.media, lang)
    if shown.error is not None or shown.stats is None:
        return shown.rows, media, f"<p>{html_error(shown.error, lang)}</p>" if shown.error else "", "", None
    stats = shown.stats
    summary = md("data.stats", lang, total=shown.total, mean=f"{stats['mean']:.0f}", p95=stats["p95"],
                 max=stats["max"], truncated=stats["truncated"], cutoff=int(cutoff_len))
    return shown.rows, media, shown.rendered, summary, stats["histogram"]


def _media_request(dataset_dir: str, extra_args: str, settings: Any) -> dict[str, Any]:
    """Where the preview may read from: the dataset folder, `media_dir` (extra settings), and in the public demo
    only what the visitor's workspace and the shipped folders hold (links followed), with a smaller size cap."""
    from studio.config_builder import parse_extra_args
    from studio.data_preview import EMBED_MB
    from studio.demo_paths import confine_path, shipped_roots
    from studio.workspace import dataset_dir as workspace_dataset_dir
    from studio.workspace import home

    media_dir = parse_extra_args(extra_args).get("media_dir") or None
    request: dict[str, Any] = {"dataset_dir": str(workspace_dataset_dir(dataset_dir)), "embed_mb": EMBED_MB}
    if settings is not None:
        if media_dir is not None:
            media_dir = confine_path(media_dir, "media_dir", home())
        request.update(link_roots=[str(home()), *map(str, shipped_roots())], embed_mb=EMBED_MB / 2)
    return {**request, "media_dir": None if media_dir is None else str(media_dir)}


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
                   ctx["dataset_dir"], lang, *mapping], [ctx["upload_message"], ctx["upload_preview"]], **private))
    ctx["preview_button_data"].click(
        preview, [ctx["dataset_dir"], ctx["dataset"], ctx["model_path"], ctx["template"], ctx["cutoff_len"],
                  ctx["preview_index"], ctx["train_on_prompt"], ctx["mask_history"], ctx["identity_name"],
                  ctx["identity_author"], ctx["extra_args"], lang],
        [ctx["preview_rows"], ctx["preview_media"], ctx["preview_render"], ctx["preview_stats"],
         ctx["preview_hist"]], **private)
