"""Meta: Llama 4 (`llama4`), Llama 3.2 Vision (`mllama`), Llama 3 / 3.1 / 3.2 / 3.3 (`llama3`), Llama 2 chat (`llama2`)
and the small MobileLLM-R1 reasoning models (which chat in Llama 3's format).

Meta's Llama repositories are gated on Hugging Face: accept the licence on the model page and set hf_hub_token.
ModelScope mirrors them under `LLM-Research/` (Llama 2 under `modelscope/`).
"""

from engine.model.families.registry import (
    BASE_NOTE,
    MULTI_GPU_NOTE,
    MULTIMODAL_NOTE,
    moe_note,
    register_family,
    register_model,
)

register_family("llama", "Llama")
register_family("mobilellm", "MobileLLM")

_GATED = "Gated: accept Meta's licence on the Hugging Face page first."

# Llama 4: 17B parameters work on each token; Scout has 16 experts (109B in all), Maverick 128 (402B).
for name, total in (("Scout-17B-16E", 109), ("Maverick-17B-128E", 402)):
    about = f"{MULTIMODAL_NOTE} {moe_note(f'{total}B', '17B')} {MULTI_GPU_NOTE}"
    register_model(f"Llama-4-{name}-Instruct", hf=f"meta-llama/Llama-4-{name}-Instruct",
                   ms=f"LLM-Research/Llama-4-{name}-Instruct", template="llama4", family="llama",
                   notes=f"{about} {_GATED}", params=total)
    register_model(f"Llama-4-{name}", hf=f"meta-llama/Llama-4-{name}", ms=f"LLM-Research/Llama-4-{name}",
                   template="llama4", family="llama", notes=f"{BASE_NOTE} {about} {_GATED}", params=total)

# Llama 3.2 Vision reads images through cross-attention layers (template mllama).
_VISION = "Reads images (cross-attention on image tiles); the vision encoder stays fixed unless freeze_vision_tower is off."
for size, extra in (("11B", ""), ("90B", f" {MULTI_GPU_NOTE}")):
    for suffix, base in (("-Instruct", ""), ("", f"{BASE_NOTE} ")):
        repo = f"Llama-3.2-{size}-Vision{suffix}"
        register_model(repo, hf=f"meta-llama/{repo}", ms=f"LLM-Research/{repo}", template="mllama", family="llama",
                       notes=f"{base}{_VISION}{extra} {_GATED}", params=size)

register_model("Llama-3.3-70B-Instruct", hf="meta-llama/Llama-3.3-70B-Instruct",
               ms="LLM-Research/Llama-3.3-70B-Instruct", template="llama3", family="llama", notes=_GATED, params="70B")
register_model("Llama-3.2-1B-Instruct", hf="meta-llama/Llama-3.2-1B-Instruct",
               ms="LLM-Research/Llama-3.2-1B-Instruct", template="llama3", family="llama", notes=_GATED, params="1B")
register_model("Llama-3.2-3B-Instruct", hf="meta-llama/Llama-3.2-3B-Instruct",
               ms="LLM-Research/Llama-3.2-3B-Instruct", template="llama3", family="llama", notes=_GATED, params="3B")
register_model("Llama-3.1-8B-Instruct", hf="meta-llama/Llama-3.1-8B-Instruct",
               ms="LLM-Research/Meta-Llama-3.1-8B-Instruct", template="llama3", family="llama", notes=_GATED, params="8B")
register_model("Llama-3.1-70B-Instruct", hf="meta-llama/Llama-3.1-70B-Instruct",
               ms="LLM-Research/Meta-Llama-3.1-70B-Instruct", template="llama3", family="llama", notes=_GATED, params="70B")
register_model("Llama-3.1-405B-Instruct", hf="meta-llama/Llama-3.1-405B-Instruct",
               ms="LLM-Research/Meta-Llama-3.1-405B-Instruct", template="llama3", family="llama",
               notes=f"{MULTI_GPU_NOTE} {_GATED}", params="405B")
register_model("Llama-3-8B-Instruct", hf="meta-llama/Meta-Llama-3-8B-Instruct",
               ms="LLM-Research/Meta-Llama-3-8B-Instruct", template="llama3", family="llama", notes=_GATED, params="8B")
register_model("Llama-3-70B-Instruct", hf="meta-llama/Meta-Llama-3-70B-Instruct",
               ms="LLM-Research/Meta-Llama-3-70B-Instruct", template="llama3", family="llama", notes=_GATED, params="70B")

_BASE = f"{BASE_NOTE} {_GATED}"
register_model("Llama-3.2-1B", hf="meta-llama/Llama-3.2-1B", ms="LLM-Research/Llama-3.2-1B", template="llama3",
               family="llama", notes=_BASE, params="1B")
register_model("Llama-3.2-3B", hf="meta-llama/Llama-3.2-3B", ms="LLM-Research/Llama-3.2-3B", template="llama3",
               family="llama", notes=_BASE, params="3B")
register_model("Llama-3.1-8B", hf="meta-llama/Llama-3.1-8B", ms="LLM-Research/Meta-Llama-3.1-8B",
               template="llama3", family="llama", notes=_BASE, params="8B")
register_model("Llama-3.1-70B", hf="meta-llama/Llama-3.1-70B", ms="LLM-Research/Meta-Llama-3.1-70B",
               template="llama3", family="llama", notes=_BASE, params="70B")
register_model("Llama-3-8B", hf="meta-llama/Meta-Llama-3-8B", ms="LLM-Research/Meta-Llama-3-8B", template="llama3",
               family="llama", notes=_BASE, params="8B")

register_model("Llama-2-7B-Chat", hf="meta-llama/Llama-2-7b-chat-hf", ms="modelscope/Llama-2-7b-chat-ms",
               template="llama2", family="llama", notes=_GATED, params="7B")
register_model("Llama-2-13B-Chat", hf="meta-llama/Llama-2-13b-chat-hf", ms="modelscope/Llama-2-13b-chat-ms",
               template="llama2", family="llama", notes=_GATED, params="13B")
register_model("Llama-2-70B-Chat", hf="meta-llama/Llama-2-70b-chat-hf", ms="modelscope/Llama-2-70b-chat-ms",
               template="llama2", family="llama", notes=_GATED, params="70B")

for size in ("140M", "360M", "950M"):
    register_model(f"MobileLLM-R1-{size}", hf=f"facebook/MobileLLM-R1-{size}", ms=f"facebook/MobileLLM-R1-{size}",
                   template="llama3", family="mobilellm", params=size,
                   notes="Small reasoning model for mathematics and code, not for general chat.")
