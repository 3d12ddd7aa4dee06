"""Alibaba Qwen: Qwen 3 (hybrid thinking, `qwen3`) and Qwen 2.5 instruct and base models (`qwen`).

Qwen publishes under the same `Qwen/` id on Hugging Face and ModelScope.
"""

from engine.model.families.registry import register_model

for size in ("0.6B", "1.7B", "4B", "8B", "14B", "32B", "30B-A3B"):
    register_model(f"Qwen3-{size}", hf=f"Qwen/Qwen3-{size}", ms=f"Qwen/Qwen3-{size}", template="qwen3",
                   family="qwen", params=size, notes="Thinks in <think> blocks unless enable_thinking is off.")

for size in ("0.6B", "1.7B", "4B", "8B", "14B"):
    register_model(f"Qwen3-{size}-Base", hf=f"Qwen/Qwen3-{size}-Base", ms=f"Qwen/Qwen3-{size}-Base",
                   template="qwen3", family="qwen", params=size, notes="Pre-trained base model, not tuned for chat.")

for size in ("0.5B", "1.5B", "3B", "7B", "14B", "32B", "72B"):
    register_model(f"Qwen2.5-{size}-Instruct", hf=f"Qwen/Qwen2.5-{size}-Instruct",
                   ms=f"Qwen/Qwen2.5-{size}-Instruct", template="qwen", family="qwen", params=size)

for size in ("0.5B", "1.5B", "3B", "7B", "14B", "32B", "72B"):
    register_model(f"Qwen2.5-{size}", hf=f"Qwen/Qwen2.5-{size}", ms=f"Qwen/Qwen2.5-{size}", template="qwen",
                   family="qwen", params=size, notes="Pre-trained base model, not tuned for chat.")

for size in ("1.5B", "7B", "32B"):
    register_model(f"Qwen2.5-Coder-{size}-Instruct", hf=f"Qwen/Qwen2.5-Coder-{size}-Instruct",
                   ms=f"Qwen/Qwen2.5-Coder-{size}-Instruct", template="qwen", family="qwen",
                   params=size)
