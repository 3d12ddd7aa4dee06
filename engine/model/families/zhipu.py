"""Zhipu AI (Z.ai) GLM, newest first: GLM-4.7 (`glm4_7`), GLM-4.5 / 4.6 (`glm4_moe`), the vision models GLM-4.5V /
4.6V (`glm4_5v`), GLM-4.1V (`glm4v`) and GLM-OCR (`glm_ocr`), GLM-Z1 (`glmz1`), GLM-4 and GLM-4-0414 (`glm4`),
ChatGLM3 (`chatglm3`).

The Hugging Face organisation is `zai-org` (formerly `THUDM`, whose ids still redirect); ModelScope's is `ZhipuAI`.
"""

from engine.model.families.registry import (
    BASE_NOTE,
    MULTI_GPU_NOTE,
    REMOTE_CODE_NOTE,
    moe_note,
    register_family,
    register_model,
)

register_family("glm", "GLM")


def _glm(name: str, *, repo: str | None = None, template: str, params: float | str, notes: str = "") -> None:
    repo = repo or name
    register_model(name, hf=f"zai-org/{repo}", ms=f"ZhipuAI/{repo}", template=template, family="glm", notes=notes,
                   params=params)


_THINKS = "Thinks before answering unless thinking is switched off."
_BIG = f"{moe_note('355B', '32B')} {MULTI_GPU_NOTE}"
_AIR = f"{moe_note('106B', '12B')} {MULTI_GPU_NOTE}"

_glm("GLM-4.7", template="glm4_7", params=355, notes=f"{_THINKS} {_BIG}")
_glm("GLM-4.7-Flash", template="glm4_7", params=31, notes=f"{_THINKS} {moe_note('31B', '3B')}")
_glm("GLM-4.6", template="glm4_moe", params=355, notes=f"{_THINKS} {_BIG}")
_glm("GLM-4.5", template="glm4_moe", params=355, notes=f"{_THINKS} {_BIG}")
_glm("GLM-4.5-Air", template="glm4_moe", params=106, notes=f"{_THINKS} {_AIR}")
_glm("GLM-4.5-Base", template="glm4_moe", params=355, notes=f"{BASE_NOTE} {_BIG}")
_glm("GLM-4.5-Air-Base", template="glm4_moe", params=106, notes=f"{BASE_NOTE} {_AIR}")

# The vision models read images (the vision encoder stays fixed unless freeze_vision_tower is off).
_VISION = "Reads images; the vision encoder stays fixed unless freeze_vision_tower is off."
_glm("GLM-4.6V", template="glm4_5v", params=106, notes=f"{_THINKS} {_VISION} {_AIR}")
_glm("GLM-4.6V-Flash", template="glm4_5v", params="10B", notes=f"{_THINKS} {_VISION}")
_glm("GLM-4.5V", template="glm4_5v", params=106, notes=f"{_THINKS} {_VISION} {_AIR}")
_glm("GLM-4.1V-9B-Thinking", template="glm4v", params="10B",
     notes=f"Reasoning model: thinks before answering. {_VISION}")
_glm("GLM-4.1V-9B-Base", template="glm4v", params="10B", notes=f"{BASE_NOTE} {_VISION}")
_glm("GLM-OCR", template="glm_ocr", params="0.9B", notes=f"Reads documents and images into text. {_VISION}")

_glm("GLM-Z1-9B-0414", template="glmz1", params="9B", notes="Reasoning model: thinks before answering.")
_glm("GLM-Z1-32B-0414", template="glmz1", params="32B", notes="Reasoning model: thinks before answering.")

_glm("GLM-4-9B-0414", template="glm4", params="9B")
_glm("GLM-4-32B-0414", template="glm4", params="32B")
_glm("GLM-4-32B-Base-0414", template="glm4", params="32B", notes=BASE_NOTE)
_glm("GLM-4-9B-Chat", repo="glm-4-9b-chat-hf", template="glm4", params="9B")

_glm("ChatGLM3-6B", repo="chatglm3-6b", template="chatglm3", params="6B", notes=REMOTE_CODE_NOTE)
