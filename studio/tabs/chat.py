"""Chat: its settings exist; the engine's API server arrives in a later version (said plainly)."""

from __future__ import annotations

from studio.context import Context
from studio.i18n import t


def build(ctx: Context) -> None:
    """Backend, dtype, load/unload, system prompt, tools, sampling, the conversation, and the notice."""
    import gradio as gr

    from studio.components import config_widget

    lang = ctx.lang
    ctx.add("chat_notice", gr.Markdown(t('notice.chat_unavailable.label', lang), elem_id="chat_notice"),
            key="notice.chat_unavailable", kind="markdown")
    with gr.Row():
        config_widget(ctx, "infer_backend", choices=["huggingface", "vllm"])
        config_widget(ctx, "infer_dtype")
        for name in ("chat_load_button", "chat_unload_button"):
            ctx.add(name, gr.Button(t(f"chat.{name}.label", lang), interactive=False, elem_id=name),
                    key=f"chat.{name}", kind="button")
    with gr.Row():
        with gr.Column(scale=3):
            ctx.add("chatbot", gr.Chatbot(label=t("chat.chatbot.label", lang), elem_id="chatbot", height=360),
                    key="chat.chatbot", kind="plot")
            ctx.add("chat_input", gr.Textbox(label=t("chat.chat_input.label", lang), elem_id="chat_input",
                                             interactive=False, lines=2), key="chat.chat_input", kind="plot")
        with gr.Column(scale=2):
            ctx.add("system_prompt", gr.Textbox(label=t("chat.system_prompt.label", lang), lines=2,
                                                elem_id="system_prompt", interactive=True), key="chat.system_prompt")
            ctx.add("tools", gr.Code(label=t("chat.tools.label", lang), language="json", elem_id="tools",
                                     interactive=True, value="[]"), key="chat.tools", kind="plot")
            config_widget(ctx, "max_new_tokens", widget="number", value=512)
            config_widget(ctx, "top_p", widget="slider")
            config_widget(ctx, "temperature", widget="slider")
            config_widget(ctx, "skip_special_tokens")
            ctx.add("escape_html", gr.Checkbox(value=True, label=t("chat.escape_html.label", lang),
                                               elem_id="escape_html", interactive=True), key="chat.escape_html")
            ctx.add("show_thinking", gr.Checkbox(value=True, label=t("chat.show_thinking.label", lang),
                                                 elem_id="show_thinking", interactive=True), key="chat.show_thinking")
