"""Google Gemma 2 and Gemma 3 instruct models (`gemma`).

Gemma repositories are gated on Hugging Face; ModelScope mirrors them under `LLM-Research/`.
"""

from engine.model.families.registry import register_model

_GATED = "Gated: accept Google's terms on the Hugging Face page first."

for size in ("2b", "9b", "27b"):
    register_model(f"Gemma-2-{size.upper()}-Instruct", hf=f"google/gemma-2-{size}-it",
                   ms=f"LLM-Research/gemma-2-{size}-it", template="gemma", family="gemma", notes=_GATED, params=size)

register_model("Gemma-3-1B-Instruct", hf="google/gemma-3-1b-it", ms="LLM-Research/gemma-3-1b-it", template="gemma",
               family="gemma", notes=_GATED, params="1B")
for size in ("4b", "12b", "27b"):
    register_model(f"Gemma-3-{size.upper()}-Instruct", hf=f"google/gemma-3-{size}-it",
                   ms=f"LLM-Research/gemma-3-{size}-it", template="gemma", family="gemma",
                   notes=f"Also reads images; only text is trained here. {_GATED}", params=size)
