"""Moonshot AI: Kimi K2 and Moonlight (`moonlight`: both chat with <|im_user|> / <|im_assistant|> turn markers) and
Kimi-Dev (a Qwen2.5 fine-tune, `qwen`). Moonshot publishes under `moonshotai/` on both hubs."""

from engine.model.families.registry import (
    BASE_NOTE,
    MULTI_GPU_NOTE,
    REMOTE_CODE_NOTE,
    moe_note,
    register_family,
    register_model,
)

register_family("kimi", "Kimi")

# LLaMA-Factory 0.9.5 lists no Kimi K2 model; K2 writes the same turn markers as Moonlight, its smaller sibling.
_K2 = f"{moe_note('1T', '32B')} {MULTI_GPU_NOTE} {REMOTE_CODE_NOTE}"
for name, notes in (("Kimi-K2-Instruct-0905", _K2), ("Kimi-K2-Instruct", _K2), ("Kimi-K2-Base", f"{BASE_NOTE} {_K2}")):
    register_model(name, hf=f"moonshotai/{name}", ms=f"moonshotai/{name}", template="moonlight", family="kimi",
                   notes=notes, params=1000)

_MOONLIGHT = f"{moe_note('16B', '3B')} {REMOTE_CODE_NOTE}"
register_model("Moonlight-16B-A3B-Instruct", hf="moonshotai/Moonlight-16B-A3B-Instruct",
               ms="moonshotai/Moonlight-16B-A3B-Instruct", template="moonlight", family="kimi", notes=_MOONLIGHT,
               params="16B")
register_model("Moonlight-16B-A3B", hf="moonshotai/Moonlight-16B-A3B", ms="moonshotai/Moonlight-16B-A3B",
               template="moonlight", family="kimi", notes=f"{BASE_NOTE} {_MOONLIGHT}", params="16B")

register_model("Kimi-Dev-72B", hf="moonshotai/Kimi-Dev-72B", ms="moonshotai/Kimi-Dev-72B", template="qwen",
               family="kimi", notes="Tuned for fixing issues in code repositories.", params="72B")
