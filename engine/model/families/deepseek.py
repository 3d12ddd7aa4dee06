"""DeepSeek, newest first: V3 / V3.1 and V2.5 (`deepseek3`), R1 and its distills (`deepseekr1`), V2, LLM and
Coder-V2 (`deepseek`) and DeepSeek-Coder (`deepseekcoder`).

DeepSeek publishes under the same `deepseek-ai/` id on Hugging Face and ModelScope.
"""

from engine.model.families.registry import (
    BASE_NOTE,
    MULTI_GPU_NOTE,
    moe_note,
    register_family,
    register_model,
)

register_family("deepseek", "DeepSeek")


def _deepseek(name: str, repo: str, *, template: str, params: float | str, notes: str = "") -> None:
    register_model(name, hf=f"deepseek-ai/{repo}", ms=f"deepseek-ai/{repo}", template=template, family="deepseek",
                   notes=notes, params=params)


_V3 = f"{moe_note('671B', '37B')} {MULTI_GPU_NOTE}"
_R1 = "Reasoning model: thinks in <think> blocks before answering."

_deepseek("DeepSeek-V3.1", "DeepSeek-V3.1", template="deepseek3", params=671,
          notes=f"Can think or answer directly; the deepseek3 template trains direct answers. {_V3}")
_deepseek("DeepSeek-V3-0324", "DeepSeek-V3-0324", template="deepseek3", params=671, notes=_V3)
_deepseek("DeepSeek-V3", "DeepSeek-V3", template="deepseek3", params=671, notes=_V3)
_deepseek("DeepSeek-V3-Base", "DeepSeek-V3-Base", template="deepseek3", params=671, notes=f"{BASE_NOTE} {_V3}")

_deepseek("DeepSeek-R1-0528", "DeepSeek-R1-0528", template="deepseekr1", params=671, notes=f"{_R1} {_V3}")
_deepseek("DeepSeek-R1", "DeepSeek-R1", template="deepseekr1", params=671, notes=f"{_R1} {_V3}")
# The distills keep Qwen's or Llama's weights but chat in DeepSeek's format (<｜User｜>/<｜Assistant｜>).
_deepseek("DeepSeek-R1-0528-Qwen3-8B", "DeepSeek-R1-0528-Qwen3-8B", template="deepseekr1", params="8B",
          notes="R1-0528's reasoning distilled into Qwen3 8B; thinks in <think> blocks.")
for base, size in (("Qwen", "1.5B"), ("Qwen", "7B"), ("Llama", "8B"), ("Qwen", "14B"), ("Qwen", "32B"),
                   ("Llama", "70B")):
    _deepseek(f"DeepSeek-R1-Distill-{base}-{size}", f"DeepSeek-R1-Distill-{base}-{size}", template="deepseekr1",
              params=size, notes=f"R1's reasoning distilled into {base} {size}; thinks in <think> blocks.")

_deepseek("DeepSeek-V2.5", "DeepSeek-V2.5", template="deepseek3", params=236,
          notes=f"{moe_note('236B', '21B')} {MULTI_GPU_NOTE}")
_deepseek("DeepSeek-V2-Lite-Chat", "DeepSeek-V2-Lite-Chat", template="deepseek", params="16B",
          notes=moe_note("16B", "2.4B"))
_deepseek("DeepSeek-Coder-V2-Lite-Instruct", "DeepSeek-Coder-V2-Lite-Instruct", template="deepseek", params="16B",
          notes=f"Code model. {moe_note('16B', '2.4B')}")
_deepseek("DeepSeek-LLM-7B-Chat", "deepseek-llm-7b-chat", template="deepseek", params="7B")
_deepseek("DeepSeek-LLM-67B-Chat", "deepseek-llm-67b-chat", template="deepseek", params="67B")
for size in ("6.7B", "33B"):
    _deepseek(f"DeepSeek-Coder-{size}-Instruct", f"deepseek-coder-{size.lower()}-instruct", template="deepseekcoder",
              params=size, notes="Code model; its template's system prompt keeps it to computer science.")
