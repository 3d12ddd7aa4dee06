"""Alibaba Qwen, newest first: Qwen3.6 (`qwen3_6`), Qwen3.5 (`qwen3_5`), Qwen3 2507 and Next (instruct models
`qwen3_nothink`, thinking models `qwen3`), Qwen3 hybrid thinking (`qwen3`), QwQ, Qwen2.5 and Qwen2 (`qwen`), and the
vision models Qwen3-VL (`qwen3_vl`, `qwen3_vl_nothink`), Qwen2.5-VL and Qwen2-VL (`qwen2_vl`).

Qwen publishes under the same `Qwen/` id on Hugging Face and ModelScope.
"""

from engine.model.families.registry import (
    BASE_NOTE,
    MULTI_GPU_NOTE,
    MULTIMODAL_NOTE,
    moe_note,
    register_family,
    register_model,
)

register_family("qwen", "Qwen")


def _qwen(name: str, *, template: str, notes: str = "", params: float | str | None = None) -> None:
    """A Qwen model whose id is `Qwen/<name>` on both hubs."""
    register_model(name, hf=f"Qwen/{name}", ms=f"Qwen/{name}", template=template, family="qwen", notes=notes,
                   params=params or name.split("-")[1])


def _sized(notes: str, size: str) -> str:
    """`notes`, then what a size written like `30B-A3B` implies: the mixture-of-experts note, and from 100B on the
    multi-GPU note."""
    total, _, active = size.partition("-A")
    parts = [notes, moe_note(total, active) if active else "", MULTI_GPU_NOTE if float(total[:-1]) >= 100 else ""]
    return " ".join(part for part in parts if part)


_THINKS = "Thinks in <think> blocks before answering."
_DIRECT = "Answers directly, without thinking."
_ALWAYS = "Always thinks in <think> blocks."

# Qwen3.6 and Qwen3.5 read images too; they reason by default (Qwen3.5 has qwen3_5_nothink to switch that off).
for size in ("27B", "35B-A3B"):
    _qwen(f"Qwen3.6-{size}", template="qwen3_6", notes=_sized(f"{_THINKS} {MULTIMODAL_NOTE}", size))
for size in ("0.8B", "2B", "4B", "9B", "27B", "35B-A3B", "122B-A10B", "397B-A17B"):
    _qwen(f"Qwen3.5-{size}", template="qwen3_5", notes=_sized(f"{_THINKS} {MULTIMODAL_NOTE}", size))
for size in ("0.8B", "2B", "4B", "9B", "35B-A3B"):
    _qwen(f"Qwen3.5-{size}-Base", template="qwen3_5", notes=BASE_NOTE)

# The 2507 update split Qwen3 into an instruct model that never thinks and a thinking model that always does.
for size in ("4B", "30B-A3B", "235B-A22B"):
    _qwen(f"Qwen3-{size}-Instruct-2507", template="qwen3_nothink", notes=_sized(_DIRECT, size))
    _qwen(f"Qwen3-{size}-Thinking-2507", template="qwen3", notes=_sized(_ALWAYS, size))
_qwen("Qwen3-Next-80B-A3B-Instruct", template="qwen3_nothink", params="80B", notes=_sized(_DIRECT, "80B-A3B"))
_qwen("Qwen3-Next-80B-A3B-Thinking", template="qwen3", params="80B", notes=_sized(_ALWAYS, "80B-A3B"))

for size in ("0.6B", "1.7B", "4B", "8B", "14B", "32B", "30B-A3B", "235B-A22B"):
    _qwen(f"Qwen3-{size}", template="qwen3", notes=_sized("Thinks in <think> blocks unless enable_thinking is off.", size))
for size in ("0.6B", "1.7B", "4B", "8B", "14B", "30B-A3B"):
    _qwen(f"Qwen3-{size}-Base", template="qwen3", notes=BASE_NOTE)

_qwen("QwQ-32B", template="qwen", notes="Reasoning model: writes a long <think> chain before each answer.")

for size in ("0.5B", "1.5B", "3B", "7B", "14B", "32B", "72B"):
    _qwen(f"Qwen2.5-{size}-Instruct", template="qwen")

# Qwen3-VL reads images here (template qwen3_vl for the thinking models, qwen3_vl_nothink for the instruct ones;
# its video is not built yet).
_VISION_IMAGES = "Reads images; the vision encoder stays fixed unless freeze_vision_tower is off."
for size in ("2B", "4B", "8B", "32B", "30B-A3B", "235B-A22B"):
    _qwen(f"Qwen3-VL-{size}-Instruct", template="qwen3_vl_nothink", params=size.partition("-A")[0],
          notes=_sized(_VISION_IMAGES, size))
    _qwen(f"Qwen3-VL-{size}-Thinking", template="qwen3_vl", params=size.partition("-A")[0],
          notes=_sized(f"{_VISION_IMAGES} Thinks in <think> blocks before answering.", size))

# Qwen2.5-VL and Qwen2-VL read images and video, trained here with their vision side (template qwen2_vl).
_VISION = "Reads images and video; the vision encoder stays fixed unless freeze_vision_tower is off."
for size in ("3B", "7B", "32B", "72B"):
    _qwen(f"Qwen2.5-VL-{size}-Instruct", template="qwen2_vl", params=size, notes=_sized(_VISION, size))
for size in ("2B", "7B", "72B"):
    _qwen(f"Qwen2-VL-{size}-Instruct", template="qwen2_vl", params=size, notes=_sized(_VISION, size))
_HEARS = "Hears speech and sounds (template qwen2_audio); the audio encoder stays fixed unless freeze_vision_tower is off."
_qwen("Qwen2-Audio-7B-Instruct", template="qwen2_audio", params="7B", notes=_HEARS)
_qwen("Qwen2-Audio-7B", template="qwen2_audio", params="7B", notes=f"{BASE_NOTE} {_HEARS}")
for size in ("7B", "14B"):
    _qwen(f"Qwen2.5-{size}-Instruct-1M", template="qwen", notes="Reads up to a million tokens of context.")
for size in ("0.5B", "1.5B", "3B", "7B", "14B", "32B", "72B"):
    _qwen(f"Qwen2.5-{size}", template="qwen", notes=BASE_NOTE)
for size in ("0.5B", "1.5B", "3B", "7B", "14B", "32B"):
    _qwen(f"Qwen2.5-Coder-{size}-Instruct", template="qwen", params=size, notes="Tuned for writing code.")
for size in ("1.5B", "7B", "72B"):
    _qwen(f"Qwen2.5-Math-{size}-Instruct", template="qwen", params=size, notes="Tuned for mathematics.")

for size in ("0.5B", "1.5B", "7B", "72B"):
    _qwen(f"Qwen2-{size}-Instruct", template="qwen")
_qwen("Qwen2-57B-A14B-Instruct", template="qwen", notes=_sized("", "57B-A14B"))
