"""The studio's Gradio app: build every tab first, then wire every event (so events can cross tabs)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from studio import demo_mode
from studio.context import Context
from studio.i18n import DEFAULT_LANG, PAGE_LANGUAGE_JS, RTL_CSS, available_languages, browser_language, t
from studio.queue import dispatch

CSS = """
.studio-progress {position: relative; height: 28px; border-radius: 6px; background: var(--block-background-fill);
  border: 1px solid var(--border-color-primary); overflow: hidden;}
.studio-progress-bar {position: absolute; inset: 0 auto 0 0; background: var(--color-accent-soft);
  transition: width 0.4s;}
.studio-progress-text {position: relative; padding-left: 10px; line-height: 28px; font-size: 0.9em;}
/* Labels, buttons, tabs and group headers wrap between words only: Japanese, Chinese and Korean otherwise break a
   compound such as 学習率 over two lines; a word longer than its box still wraps rather than overflow. Japanese
   wraps at phrase boundaries (`auto-phrase`, where the page says it is Japanese), its info texts too. Korean info
   texts wrap at spaces as Korean is set; Chinese info texts are sentences and wrap between characters, as Chinese
   text is set (keeping whole words there left lines ending early and a lone "）。" on the next line). */
[data-testid="block-info"], button, [role="tab"], .label-wrap span, label span {
  word-break: keep-all; overflow-wrap: anywhere; line-break: strict;}
:lang(ko) .info-text {word-break: keep-all; overflow-wrap: anywhere;}
:lang(ja) [data-testid="block-info"], :lang(ja) .info-text, :lang(ja) button, :lang(ja) [role="tab"],
:lang(ja) .label-wrap span, :lang(ja) label span {
  word-break: auto-phrase; overflow-wrap: anywhere; line-break: strict;}
""" + RTL_CSS


def create_app(lang: str = DEFAULT_LANG) -> Any:
    """The whole studio as a gr.Blocks (nothing heavy is imported: training runs in subprocesses)."""
    from engine.model.families import get_model, list_models
    from studio.tabs import chat, evaluate, export, file_lists, monitor, top, train, train_data, train_runs

    recommended = dict(get_model(list_models()[0]).recommended or {})
    if isinstance(recommended.get("dataset"), str):
        recommended["dataset"] = [d.strip() for d in recommended["dataset"].split(",")]
    ctx = Context(lang=lang, initial=recommended)
    with gr.Blocks(title=t("app.title.label", lang)) as demo:
        ctx.add("title", gr.Markdown(t("app.heading.label", lang), elem_id="title"), key="app.heading",
                kind="markdown")
        ctx.add("subtitle", gr.Markdown(t("app.subtitle.label", lang), elem_id="subtitle"), key="app.subtitle",
                kind="markdown")
        settings = demo_mode.active()
        if settings is not None:
            ctx.add("demo_banner", gr.Markdown(demo_mode.limits_text(settings, lang), elem_id="demo_banner"))
        top.build(ctx)
        file_lists.build(ctx)
        with gr.Tabs(elem_id="tabs"):
            for name, modules in (("train", (train, monitor, train_runs, train_data)), ("evaluate", (evaluate,)),
                                  ("chat", (chat,)), ("export", (export,))):
                with gr.Tab(t(f"tab.{name}.label", lang), elem_id=f"tab_{name}") as tab:
                    ctx.add(f"tab_{name}", tab, key=f"tab.{name}", kind="tab")
                    for module in modules:
                        module.build(ctx)
        saved_lang = gr.BrowserState(None, storage_key="studio_lang")
        top.wire(ctx, demo)
        train.wire(ctx)
        monitor.wire(ctx, demo)
        train_runs.wire(ctx)
        train_data.wire(ctx)
        chat.wire(ctx, demo)
        evaluate.wire(ctx)
        export.wire(ctx)
        file_lists.wire(ctx, demo)
        wire_language(ctx, demo, saved_lang)
        if settings is not None:
            wire_demo(ctx, demo, settings)
    demo.studio_context = ctx  # handlers and tests reach the components through it
    dispatch()  # a restarted studio resumes the queue (jobs queued before it stopped start as devices free up)
    return demo


def wire_language(ctx: Context, demo: Any, saved_lang: Any) -> None:
    """Relabel everything when the language changes; remember the choice in the browser; start in it on load."""
    labelled = ctx.labelled_components()

    def relabel(lang: str) -> list[Any]:
        """Language code → updates for every labelled component, and the code to remember."""
        return [*ctx.relabel(lang), lang]

    def initial_language(saved: str | None, request: gr.Request) -> str:
        """The remembered language, else the browser's first supported one, else English."""
        if saved in available_languages():
            return saved
        header = request.headers.get("accept-language") if request is not None else None
        return browser_language(header)

    ctx["lang"].change(relabel, ctx["lang"], [*labelled, saved_lang], api_visibility="private")
    demo.load(initial_language, saved_lang, ctx["lang"], api_visibility="private")
    # The page says which language it is in and, for Arabic, that it reads right to left (Gradio itself sets the
    # browser's language there and no direction).
    demo.load(None, ctx["lang"], None, js=PAGE_LANGUAGE_JS, api_visibility="private")
    ctx["lang"].change(None, ctx["lang"], None, js=PAGE_LANGUAGE_JS, api_visibility="private")


# Widgets a demo visitor must not set: folders (each visitor has one workspace) and hub upload.
DEMO_HIDDEN = ("dataset_dir", "export_dir", "export_hub_model_id", "export_quantization_dataset", "hub")


def wire_demo(ctx: Context, demo: Any, settings: Any) -> None:
    """Demo mode: hide what a visitor may not set and keep the banner in the page's language (the lists that
    depend on the visitor's files refresh on every page load, in `studio.tabs.file_lists`)."""
    for name in DEMO_HIDDEN:
        if name in ctx.components:
            ctx[name].visible = False
    private = {"api_visibility": "private"}
    ctx["lang"].change(lambda lang: demo_mode.limits_text(settings, lang), ctx["lang"], ctx["demo_banner"], **private)
