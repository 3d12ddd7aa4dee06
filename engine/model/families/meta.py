"""Meta Llama: Llama 4 (`llama4`), Llama 3 / 3.1 / 3.2 / 3.3 (`llama3`) and Llama 2 chat (`llama2`).

Meta's repositories are gated on Hugging Face: accept the licence on the model page and set hf_hub_token.
ModelScope mirrors them under `LLM-Research/` (Llama 2 under `modelscope/`).
"""

from engine.model.families.registry import register_model

_GATED = "Gated: accept Meta's licence on the Hugging Face page first."

register_model("Llama-3.2-1B-Instruct", hf="meta-llama/Llama-3.2-1B-Instruct",
               ms="LLM-Research/Llama-3.2-1B-Instruct", template="llama3", family="llama", notes=_GATED, params="1B")
register_model("Llama-3.2-3B-Instruct", hf="meta-llama/Llama-3.2-3B-Instruct",
               ms="LLM-Research/Llama-3.2-3B-Instruct", template="llama3", family="llama", notes=_GATED, params="3B")
register_model("Llama-3.1-8B-Instruct", hf="meta-llama/Llama-3.1-8B-Instruct",
               ms="LLM-Research/Meta-Llama-3.1-8B-Instruct", template="llama3", family="llama", notes=_GATED, params="8B")
register_model("Llama-3.1-70B-Instruct", hf="meta-llama/Llama-3.1-70B-Instruct",
               ms="LLM-Research/Meta-Llama-3.1-70B-Instruct", template="llama3", family="llama", notes=_GATED, params="70B")
register_model("Llama-3.3-70B-Instruct", hf="meta-llama/Llama-3.3-70B-Instruct",
               ms="LLM-Research/Llama-3.3-70B-Instruct", template="llama3", family="llama", notes=_GATED, params="70B")
register_model("Llama-3-8B-Instruct", hf="meta-llama/Meta-Llama-3-8B-Instruct",
               ms="LLM-Research/Meta-Llama-3-8B-Instruct", template="llama3", family="llama", notes=_GATED, params="8B")
register_model("Llama-3-70B-Instruct", hf="meta-llama/Meta-Llama-3-70B-Instruct",
               ms="LLM-Research/Meta-Llama-3-70B-Instruct", template="llama3", family="llama", notes=_GATED, params="70B")

_BASE = f"Pre-trained base model, not tuned for chat. {_GATED}"
register_model("Llama-3.2-1B", hf="meta-llama/Llama-3.2-1B", ms="LLM-Research/Llama-3.2-1B", template="llama3",
               family="llama", notes=_BASE, params="1B")
register_model("Llama-3.2-3B", hf="meta-llama/Llama-3.2-3B", ms="LLM-Research/Llama-3.2-3B", template="llama3",
               family="llama", notes=_BASE, params="3B")
register_model("Llama-3.1-8B", hf="meta-llama/Llama-3.1-8B", ms="LLM-Research/Meta-Llama-3.1-8B",
               template="llama3", family="llama", notes=_BASE, params="8B")
register_model("Llama-3-8B", hf="meta-llama/Meta-Llama-3-8B", ms="LLM-Research/Meta-Llama-3-8B", template="llama3",
               family="llama", notes=_BASE, params="8B")

register_model("Llama-4-Scout-17B-16E-Instruct", hf="meta-llama/Llama-4-Scout-17B-16E-Instruct",
               ms="LLM-Research/Llama-4-Scout-17B-16E-Instruct", template="llama4", family="llama",
               notes=f"109B-parameter mixture of experts; only its text part is trained here. {_GATED}", params=109)

register_model("Llama-2-7B-Chat", hf="meta-llama/Llama-2-7b-chat-hf", ms="modelscope/Llama-2-7b-chat-ms",
               template="llama2", family="llama", notes=_GATED, params="7B")
register_model("Llama-2-13B-Chat", hf="meta-llama/Llama-2-13b-chat-hf", ms="modelscope/Llama-2-13b-chat-ms",
               template="llama2", family="llama", notes=_GATED, params="13B")
