"""Microsoft Phi: Phi-4 14B (`phi4`), Phi-4-mini (`phi4_mini`), Phi-3 / Phi-3.5 (`phi`) and Phi-3-small
(`phi_small`). ModelScope mirrors them under `LLM-Research/`."""

from engine.model.families.registry import REMOTE_CODE_NOTE, moe_note, register_family, register_model

register_family("phi", "Phi")

register_model("Phi-4", hf="microsoft/phi-4", ms="LLM-Research/phi-4", template="phi4", family="phi", params=14)
register_model("Phi-4-mini-Instruct", hf="microsoft/Phi-4-mini-instruct", ms="LLM-Research/Phi-4-mini-instruct",
               template="phi4_mini", family="phi", params=3.8)

register_model("Phi-3.5-mini-Instruct", hf="microsoft/Phi-3.5-mini-instruct",
               ms="LLM-Research/Phi-3.5-mini-instruct", template="phi", family="phi", params=3.8)
register_model("Phi-3.5-MoE-Instruct", hf="microsoft/Phi-3.5-MoE-instruct", ms="LLM-Research/Phi-3.5-MoE-instruct",
               template="phi", family="phi", notes=moe_note("42B", "6.6B"), params=42)
for name, size in (("mini-4k", 3.8), ("mini-128k", 3.8), ("medium-4k", 14), ("medium-128k", 14)):
    register_model(f"Phi-3-{name}-Instruct", hf=f"microsoft/Phi-3-{name}-instruct",
                   ms=f"LLM-Research/Phi-3-{name}-instruct", template="phi", family="phi", params=size)
for name in ("small-8k", "small-128k"):
    register_model(f"Phi-3-{name}-Instruct", hf=f"microsoft/Phi-3-{name}-instruct",
                   ms=f"LLM-Research/Phi-3-{name}-instruct", template="phi_small", family="phi",
                   notes=REMOTE_CODE_NOTE, params=7)
