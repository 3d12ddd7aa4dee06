"""The Chat tab's arena: two models answer the same message side by side, both streaming; the person says which
answer is better (or a tie, or both bad); the votes are saved and summed up per pair of models.

Built inside the Chat tab (`studio.tabs.chat` calls `build` and `wire`); it shares the chat's backend, dtype,
system prompt and sampling settings. The models run in the chat server's `arena_a` and `arena_b` slots, loaded
only when asked (which unloads the single chat's model) and unloaded with **Unload both**.
"""

from __future__ import annotations

import html
from typing import Any

from engine.errors import StudioError
from studio import arena
from studio.chat_display import render_reply
from studio.chat_server import ARENA_SLOTS, base_config, find_server, start_servers, stop_server, stream_replies
from studio.context import Context
from studio.i18n import t
from studio.markup import escape_markdown, md, md_error

# The top bar's and the chat's settings the arena's models are loaded with, in the handlers' argument order.
TOP = ("model_name", "model_path", "finetuning_type", "template", "quantization_bit", "infer_backend", "infer_dtype")
VOTE_BUTTONS = {"a": "arena_vote_a", "b": "arena_vote_b", "tie": "arena_vote_tie", "both_bad": "arena_vote_bad"}


def build(ctx: Context) -> None:
    """Two model pickers, blind mode, load/unload, two conversations, one message box, the votes and the summary."""
    import gradio as gr

    lang = ctx.lang

    def button(name: str, variant: str = "secondary") -> None:
        ctx.add(name, gr.Button(t(f"arena.{name}.label", lang), elem_id=name, variant=variant),
                key=f"arena.{name}", kind="button")

    ctx.add("arena_intro", gr.Markdown(t("arena.arena_intro.label", lang), elem_id="arena_intro"),
            key="arena.arena_intro", kind="markdown")
    with gr.Row():
        for name in ("arena_model_a", "arena_model_b"):
            ctx.add(name, gr.Dropdown(choices=[], value=None, label=t(f"arena.{name}.label", lang),
                                      info=t(f"arena.{name}.info", lang), elem_id=name, interactive=True,
                                      filterable=True), key=f"arena.{name}")
    ctx.add("arena_blind", gr.Checkbox(value=True, label=t("arena.arena_blind.label", lang),
                                       info=t("arena.arena_blind.info", lang), elem_id="arena_blind",
                                       interactive=True), key="arena.arena_blind")
    with gr.Row():
        button("arena_load_button", "primary")
        button("arena_unload_button")
    ctx.add("arena_status", gr.Markdown(t("arena.msg.not_loaded", lang), elem_id="arena_status"))
    ctx.add("arena_sides", gr.Markdown("", elem_id="arena_sides"))
    with gr.Row(equal_height=True):
        for name in ("arena_chatbot_a", "arena_chatbot_b"):
            ctx.add(name, gr.Chatbot(label=t(f"arena.{name}.label", lang), elem_id=name, height=360),
                    key=f"arena.{name}", kind="plot")
    ctx.add("arena_input", gr.Textbox(label=t("arena.arena_input.label", lang), elem_id="arena_input", lines=1,
                                      max_lines=8, placeholder=t("arena.arena_input.placeholder", lang),
                                      interactive=True), key="arena.arena_input")
    with gr.Row():
        button("arena_send_button", "primary")
        button("arena_new_button")
    with gr.Row():
        for name in VOTE_BUTTONS.values():
            button(name)
    ctx.add("arena_summary", gr.Dataframe(label=t("arena.arena_summary.label", lang), elem_id="arena_summary",
                                          interactive=False, wrap=True), key="arena.arena_summary", kind="plot")
    ctx.add("arena_round", gr.State(None))


def refresh_choices(model_name: str, model_path: str, lang: str, a: str | None, b: str | None) -> tuple[Any, Any]:
    """Page loaded, arena opened or language changed → both pickers' entries; a choice still listed is kept, else
    A is the top bar's model and B the newest trained run (when there is one)."""
    import gradio as gr

    choices = arena.model_choices(model_path or model_name, lang)
    values = [value for _, value in choices]
    a = a if a in values else arena.BASE
    b = b if b in values else next((value for value in values if value != a), None)
    return gr.update(choices=choices, value=a), gr.update(choices=choices, value=b)


def new_round(blind: bool) -> dict[str, Any]:
    """A round's state: the screen's two conversations, whether the sides are swapped, which model sits where."""
    return {"a": [], "b": [], "blind": bool(blind), "swapped": arena.pick_swapped(blind), "models": None,
            "voted": False}


def side_slots(round_: dict[str, Any]) -> dict[str, str]:
    """Screen side → chat server slot (swapped: the second loaded model is shown as A)."""
    first, second = ARENA_SLOTS
    return {"a": second, "b": first} if round_["swapped"] else {"a": first, "b": second}


def sides_text(round_: dict[str, Any] | None, lang: str) -> str:
    """Who is who: named, or hidden until the vote in blind mode, then revealed."""
    if not round_ or not round_.get("models"):
        return ""
    names = {side: arena.short_name(model) for side, model in round_["models"].items()}
    if round_["blind"] and not round_["voted"]:
        return t("arena.msg.sides_hidden", lang)
    key = "arena.msg.revealed" if round_["blind"] else "arena.msg.sides_shown"
    return md(key, lang, a=names["a"], b=names["b"])


def load_arena(lang: str, a: str | None, b: str | None, *top: Any):  # noqa: ANN201 - generator
    """Load both chosen models (each in its own server; the single chat's model is unloaded); yields (status,
    conversation A, conversation B, round, sides, single chat status). A refusal changes nothing else."""
    import gradio as gr

    keep = (gr.update(),) * 5
    yield t("arena.msg.loading", lang), *keep
    model_name, model_path, method, template, quantization_bit, backend, dtype = top
    try:
        choices = arena.model_choices(model_path or model_name, lang)
        base = base_config(model_path, method, template, quantization_bit, backend, dtype)
        picked = zip(ARENA_SLOTS, (a, b), strict=True)
        start_servers({slot: arena.choice_config(choice, base, choices) for slot, choice in picked})
    except (StudioError, ValueError) as err:
        yield f"❌ {md_error(err, lang) if isinstance(err, StudioError) else escape_markdown(err)}", *keep
        return
    yield t("arena.msg.loaded", lang), [], [], None, "", t("chat.msg.not_loaded", lang)


def unload_arena(lang: str) -> str:
    """Stop both arena servers."""
    stopped = [stop_server(slot=slot) for slot in ARENA_SLOTS]
    return t("arena.msg.unloaded" if any(stopped) else "arena.msg.not_loaded", lang)


def arena_status(lang: str) -> str:
    """Whether both arena models are loaded, in `lang`."""
    loaded = all(find_server(slot) is not None for slot in ARENA_SLOTS)
    return t("arena.msg.loaded" if loaded else "arena.msg.not_loaded", lang)


def send(text: str, round_: dict[str, Any] | None, shown_a: list, shown_b: list, system: str, max_new_tokens: Any,
         top_p: float, temperature: float, escape: bool, show_thinking: bool, blind: bool,
         lang: str):  # noqa: ANN201 - generator
    """Send the message to both models and stream both answers at once; yields (message box, round, conversation
    A, conversation B, sides, status). After a vote the message starts a new round. When either model fails, the
    turn is taken back from both and the message stays in the box."""
    import gradio as gr

    if not (text or "").strip():
        yield (gr.update(),) * 6
        return
    servers = {slot: find_server(slot) for slot in ARENA_SLOTS}
    if any(state is None for state in servers.values()):
        yield *(gr.update(),) * 5, f"❌ {t('arena.msg.load_first', lang)}"
        return
    if not round_ or round_["voted"] or not round_["models"]:
        round_, shown_a, shown_b = new_round(blind), [], []
        round_["models"] = {side: servers[slot].get("identity") or servers[slot]["model"]
                            for side, slot in side_slots(round_).items()}
    slots = side_slots(round_)
    user = {"role": "user", "content": text}
    prefix = [{"role": "system", "content": system}] if (system or "").strip() else []
    conversations = {side: [*prefix, *round_[side], user] for side in arena.SIDES}
    bubble = html.escape(text) if escape else text
    shown = {side: [*old, {"role": "user", "content": bubble}, {"role": "assistant", "content": ""}]
             for side, old in (("a", shown_a), ("b", shown_b))}
    replies = {side: "" for side in arena.SIDES}
    failed: StudioError | None = None
    sides = sides_text(round_, lang)
    for side, item in stream_replies({side: servers[slot] for side, slot in slots.items()}, conversations,
                                     max_tokens=int(max_new_tokens or 256), top_p=top_p, temperature=temperature):
        if isinstance(item, StudioError):
            failed = failed or item
            continue
        replies[side] = item
        shown[side][-1] = {"role": "assistant", "content": render_reply(item, escape, show_thinking, lang)}
        yield "", round_, shown["a"], shown["b"], sides, gr.update()
    if failed is not None:
        yield text, round_, shown_a, shown_b, sides, f"❌ {md_error(failed, lang)}"
        return
    round_ = {**round_, **{side: [*round_[side], user, {"role": "assistant", "content": replies[side]}]
                           for side in arena.SIDES}}
    yield "", round_, shown["a"], shown["b"], sides, t("arena.msg.vote_now", lang)


def vote(choice: str, round_: dict[str, Any] | None, system: str, lang: str) -> tuple[Any, ...]:
    """Save the vote on this round and reveal the sides; returns (round, sides, status, summary)."""
    import gradio as gr

    if not round_ or not round_.get("models") or not round_["a"]:
        return gr.update(), gr.update(), f"❌ {t('arena.msg.ask_first', lang)}", gr.update()
    if round_["voted"]:
        return gr.update(), gr.update(), f"❌ {t('arena.msg.already_voted', lang)}", gr.update()
    arena.record_vote(arena.votes_path(), models=round_["models"], vote=choice, blind=round_["blind"],
                      swapped=round_["swapped"], conversation={side: round_[side] for side in arena.SIDES},
                      system=system)
    round_ = {**round_, "voted": True}
    verdict = t(f"arena.{VOTE_BUTTONS[choice]}.label", lang)
    return round_, sides_text(round_, lang), t("arena.msg.voted", lang, vote=verdict), summary_table(lang)


def summary_table(lang: str) -> Any:
    """The votes so far, summed up per pair of models, from the vote file."""
    import pandas as pd

    headers, rows = arena.summary_rows(arena.read_votes(arena.votes_path()), lang)
    return pd.DataFrame(rows, columns=headers)


def wire(ctx: Context, demo: Any) -> None:
    """Pickers, status and summary refreshed on page load, language change and opening the arena (who is who on a
    language change too); load, unload, send, new round, votes."""
    lang = ctx["lang"]
    private = {"api_visibility": "private"}
    pickers = [ctx["arena_model_a"], ctx["arena_model_b"]]
    refresh_inputs = [ctx["model_name"], ctx["model_path"], lang, *pickers]
    for event in (demo.load, lang.change, ctx["chat_arena_tab"].select):
        event(refresh_choices, refresh_inputs, pickers, **private)
        event(arena_status, lang, ctx["arena_status"], **private)
        event(summary_table, lang, ctx["arena_summary"], **private)
    ctx["model_path"].change(refresh_choices, refresh_inputs, pickers, **private)
    lang.change(sides_text, [ctx["arena_round"], lang], ctx["arena_sides"], **private)
    rounds = [ctx["arena_chatbot_a"], ctx["arena_chatbot_b"], ctx["arena_round"], ctx["arena_sides"]]
    ctx["arena_load_button"].click(load_arena, [lang, *pickers, *(ctx[n] for n in TOP)],
                                   [ctx["arena_status"], *rounds, ctx["chat_status"]], **private)
    ctx["arena_unload_button"].click(unload_arena, lang, ctx["arena_status"], **private)
    inputs = [ctx["arena_input"], ctx["arena_round"], ctx["arena_chatbot_a"], ctx["arena_chatbot_b"],
              ctx["system_prompt"], ctx["max_new_tokens"], ctx["top_p"], ctx["temperature"], ctx["escape_html"],
              ctx["show_thinking"], ctx["arena_blind"], lang]
    outputs = [ctx["arena_input"], ctx["arena_round"], ctx["arena_chatbot_a"], ctx["arena_chatbot_b"],
               ctx["arena_sides"], ctx["arena_status"]]
    ctx["arena_send_button"].click(send, inputs, outputs, **private)
    ctx["arena_input"].submit(send, inputs, outputs, **private)
    ctx["arena_new_button"].click(lambda: ([], [], None, ""), None, rounds, **private)
    for choice, name in VOTE_BUTTONS.items():
        ctx[name].click(lambda round_, system, code, choice=choice: vote(choice, round_, system, code),
                        [ctx["arena_round"], ctx["system_prompt"], lang],
                        [ctx["arena_round"], ctx["arena_sides"], ctx["arena_status"], ctx["arena_summary"]],
                        **private)
