"""Chat: load the chosen model into its own API server process and talk to it with streaming replies."""

from __future__ import annotations

import html
import json
from typing import Any

from engine.errors import StudioError
from studio.chat_display import render_reply
from studio.chat_server import CHAT_FILE_TYPES, MAX_CHAT_FILES, attachment_limit_mb, base_config
from studio.context import Context
from studio.i18n import t
from studio.markup import escape_markdown, md, md_error
from studio.tabs import arena


def build(ctx: Context) -> None:
    """Backend and dtype; the single chat (load/unload, the conversation) and the arena as two sub-tabs; system
    prompt, tools and sampling settings beside them, shared by both."""
    import gradio as gr

    from studio.components import config_widget

    lang = ctx.lang
    with gr.Row():
        config_widget(ctx, "infer_backend", choices=["huggingface", "vllm"])
        config_widget(ctx, "infer_dtype")
    with gr.Row():
        with gr.Column(scale=3), gr.Tabs(elem_id="chat_modes"):
            with gr.Tab(t("chat.chat_single_tab.label", lang), elem_id="chat_single_tab") as single:
                ctx.add("chat_single_tab", single, key="chat.chat_single_tab", kind="tab")
                _build_single(ctx)
            with gr.Tab(t("chat.chat_arena_tab.label", lang), elem_id="chat_arena_tab") as arena_tab:
                ctx.add("chat_arena_tab", arena_tab, key="chat.chat_arena_tab", kind="tab")
                arena.build(ctx)
        with gr.Column(scale=2):
            ctx.add("system_prompt", gr.Textbox(label=t("chat.system_prompt.label", lang), lines=2,
                                                elem_id="system_prompt", interactive=True), key="chat.system_prompt")
            ctx.add("tools", gr.Code(label=t("chat.tools.label", lang), language="json", elem_id="tools",
                                     interactive=True, value="[]"), key="chat.tools", kind="plot")
            # gr.Code has no info text: the hint goes underneath.
            ctx.add("tools_help", gr.Markdown(t("chat.tools_help.label", lang), elem_id="tools_help"),
                    key="chat.tools_help", kind="markdown")
            config_widget(ctx, "max_new_tokens", widget="number", value=256)
            config_widget(ctx, "top_p", widget="slider")
            config_widget(ctx, "temperature", widget="slider")
            config_widget(ctx, "skip_special_tokens")
            ctx.add("escape_html", gr.Checkbox(value=True, label=t("chat.escape_html.label", lang),
                                               elem_id="escape_html", interactive=True), key="chat.escape_html")
            ctx.add("show_thinking", gr.Checkbox(value=True, label=t("chat.show_thinking.label", lang),
                                                 elem_id="show_thinking", interactive=True), key="chat.show_thinking")
    ctx.add("chat_history", gr.State([]))


def _build_single(ctx: Context) -> None:
    """The single chat: load/unload the top bar's model, the conversation, the message box, send and clear."""
    import gradio as gr

    lang = ctx.lang
    with gr.Row():
        for name in ("chat_load_button", "chat_unload_button"):
            ctx.add(name, gr.Button(t(f"chat.{name}.label", lang), elem_id=name,
                                    variant="primary" if name == "chat_load_button" else "secondary"),
                    key=f"chat.{name}", kind="button")
    ctx.add("chat_status", gr.Markdown(t("chat.msg.not_loaded", lang), elem_id="chat_status"))
    ctx.add("chatbot", gr.Chatbot(label=t("chat.chatbot.label", lang), elem_id="chatbot", height=420),
            key="chat.chatbot", kind="plot")
    # One line that grows: Gradio sends a one-line box on Enter and adds a line on Shift+Enter (a box of
    # two or more lines does the opposite, which surprises everyone used to chat apps). Long pasted text
    # stays text (Gradio would turn it into an attached .txt file past max_plain_text_length).
    ctx.add("chat_input", gr.MultimodalTextbox(
        label=t("chat.chat_input.label", lang), elem_id="chat_input", info=attach_info(lang),
        placeholder=t("chat.chat_input.placeholder", lang), interactive=True, lines=1, max_lines=8,
        sources=["upload"], file_count="multiple", submit_btn=False, max_plain_text_length=1_000_000,
        file_types=list(CHAT_FILE_TYPES)),
        key="chat.chat_input", extra=lambda lang: {"info": attach_info(lang)})
    with gr.Row():
        for name, variant in (("chat_send_button", "primary"), ("chat_clear_button", "secondary")):
            ctx.add(name, gr.Button(t(f"chat.{name}.label", lang), elem_id=name, variant=variant),
                    key=f"chat.{name}", kind="button")


def attach_info(lang: str) -> str:
    """The hint under the message box: which files can be attached, how many and how large."""
    return t("chat.msg.attach_info", lang, count=MAX_CHAT_FILES, size=f"{attachment_limit_mb():g}")


def parse_tools(text: str) -> list | None:
    """The tools JSON (a list of tool definitions), None when empty; StudioError when it is not valid."""
    if not text or not text.strip() or text.strip() == "[]":
        return None
    try:
        tools = json.loads(text)
    except json.JSONDecodeError as err:
        raise StudioError("chat_tools_invalid", line=err.lineno, problem=err.msg) from None
    if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
        raise StudioError("chat_tools_not_list")
    return [tool if "type" in tool else {"type": "function", "function": tool} for tool in tools]


def load_chat_model(lang: str, model_name: str, model_path: str, method: str, checkpoint: list[str],
                    template: str, quantization_bit: str, backend: str, dtype: str):  # noqa: ANN201 - generator
    """Start the model server for the top bar's model and checkpoint; yields status texts while it loads."""
    from studio.chat_server import start_server
    from studio.runs import run_model_key
    from studio.widgets import checkpoint_to_config

    yield t("chat.msg.loading", lang)
    config = base_config(model_path, method, template, quantization_bit, backend, dtype)
    try:
        config.update(checkpoint_to_config(checkpoint or [], run_model_key(model_name, model_path), method))
        state = start_server(config)
    except (StudioError, ValueError) as err:
        yield f"❌ {md_error(err, lang) if isinstance(err, StudioError) else escape_markdown(err)}"
        return
    yield md("chat.msg.loaded", lang, model=state["model"], adapter=state.get("adapter") or "—")


def unload_chat_model(lang: str) -> str:
    """Stop the model server."""
    from studio.chat_server import stop_server

    return t("chat.msg.unloaded" if stop_server() else "chat.msg.not_loaded", lang)


def send(message: dict | None, history: list[dict], display: list[dict], system: str, tools_text: str,
         max_new_tokens: float, top_p: float, temperature: float, skip_special: bool, escape: bool,
         show_thinking: bool, lang: str):  # noqa: ANN201 - generator
    """Send the message box's text and files and stream the reply; yields (message box, raw history, display
    history, status). On an error the box keeps what was typed and attached, so nothing is lost."""
    import gradio as gr
    from gradio.utils import get_upload_folder

    from studio.chat_server import check_attachments, find_server, stream_reply

    text, files = (message or {}).get("text") or "", (message or {}).get("files") or []
    if not text.strip() and not files:
        yield gr.update(), history, display, gr.update()
        return
    state = find_server()
    if state is None:
        yield gr.update(), history, display, f"❌ {t('chat.msg.load_first', lang)}"
        return
    try:
        tools = parse_tools(tools_text)
        files = check_attachments(files, get_upload_folder())
    except StudioError as err:
        yield gr.update(), history, display, f"❌ {md_error(err, lang)}"
        return
    turn = {"role": "user", "content": text, **({"files": files} if files else {})}
    history = [*history, turn]
    shown_user = html.escape(text) if escape else text
    shown = [*({"path": path} for path in files), *([shown_user] if text else [])]
    display = [*display, {"role": "user", "content": shown if files else shown_user},
               {"role": "assistant", "content": ""}]
    messages = ([{"role": "system", "content": system}] if (system or "").strip() else []) + history
    empty = {"text": "", "files": []}
    reply = ""
    try:
        for reply in stream_reply(state, messages, tools=tools, max_tokens=int(max_new_tokens or 256),
                                  top_p=top_p, temperature=temperature):
            display[-1] = {"role": "assistant", "content": render_reply(reply, escape, show_thinking, lang)}
            yield empty, history, display, gr.update()
    except StudioError as err:
        yield gr.update(), history[:-1], display[:-2], f"❌ {md_error(err, lang)}"
        return
    history = [*history, {"role": "assistant", "content": reply}]
    yield empty, history, display, gr.update()


def wire(ctx: Context, demo: Any) -> None:
    """Load / unload / send / clear, and on page load say whether a model is already loaded."""
    lang = ctx["lang"]
    private = {"api_visibility": "private"}
    top = [ctx[n] for n in ("model_name", "model_path", "finetuning_type", "checkpoint", "template",
                            "quantization_bit", "infer_backend", "infer_dtype")]
    ctx["chat_load_button"].click(load_chat_model, [lang, *top], ctx["chat_status"], **private)
    ctx["chat_unload_button"].click(unload_chat_model, lang, ctx["chat_status"], **private)
    inputs = [ctx["chat_input"], ctx["chat_history"], ctx["chatbot"], ctx["system_prompt"], ctx["tools"],
              ctx["max_new_tokens"], ctx["top_p"], ctx["temperature"], ctx["skip_special_tokens"],
              ctx["escape_html"], ctx["show_thinking"], lang]
    outputs = [ctx["chat_input"], ctx["chat_history"], ctx["chatbot"], ctx["chat_status"]]
    ctx["chat_send_button"].click(send, inputs, outputs, **private)
    ctx["chat_input"].submit(send, inputs, outputs, **private)
    ctx["chat_clear_button"].click(lambda: ([], []), None, [ctx["chat_history"], ctx["chatbot"]], **private)

    def current(lang_value: str) -> str:
        """Page loaded or language changed → which model the chat server holds, if any, in that language."""
        from studio.chat_server import find_server

        state = find_server()
        if state is None:
            return t("chat.msg.not_loaded", lang_value)
        return md("chat.msg.loaded", lang_value, model=state["model"], adapter=state.get("adapter") or "—")

    demo.load(current, lang, ctx["chat_status"], **private)
    lang.change(current, lang, ctx["chat_status"], **private)
    ctx["chat_single_tab"].select(current, lang, ctx["chat_status"], **private)
    arena.wire(ctx, demo)
