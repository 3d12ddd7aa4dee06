"""MiniMax: MiniMax-M2 / M2.1 (`minimax2`), MiniMax-M1 and MiniMax-Text-01 (`minimax1`). All are large mixtures of
experts published under `MiniMaxAI/`; the M1 and Text-01 entries are the transformers-format `-hf` repositories."""

from engine.model.families.registry import MULTI_GPU_NOTE, moe_note, register_family, register_model

register_family("minimax", "MiniMax")

_M2 = f"Thinks in <think> blocks, also between tool calls. {moe_note('229B', '10B')} {MULTI_GPU_NOTE}"
for name in ("MiniMax-M2.1", "MiniMax-M2"):
    register_model(name, hf=f"MiniMaxAI/{name}", ms=f"MiniMaxAI/{name}", template="minimax2", family="minimax",
                   notes=_M2, params=229)

_M1 = f"{moe_note('456B', '46B')} {MULTI_GPU_NOTE}"
for budget in ("80k", "40k"):
    repo = f"MiniMaxAI/MiniMax-M1-{budget}-hf"
    register_model(f"MiniMax-M1-{budget}", hf=repo, ms=repo, template="minimax1", family="minimax", params=456,
                   notes=f"Reasoning model (thinks for up to {budget} tokens). {_M1}")
register_model("MiniMax-Text-01", hf="MiniMaxAI/MiniMax-Text-01-hf", ms="MiniMaxAI/MiniMax-Text-01",
               template="minimax1", family="minimax", notes=_M1, params=456)
