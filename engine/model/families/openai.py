"""OpenAI's open-weight gpt-oss models (`gpt_oss`), published under `openai/` on both hubs (Apache-2.0)."""

from engine.model.families.registry import MULTI_GPU_NOTE, moe_note, register_family, register_model

register_family("gpt-oss", "gpt-oss")

_REASONS = "Reasoning model: thinks in its analysis channel (the harmony format) before answering."
register_model("gpt-oss-20b", hf="openai/gpt-oss-20b", ms="openai/gpt-oss-20b", template="gpt_oss", family="gpt-oss",
               notes=f"{_REASONS} {moe_note('21B', '3.6B')}", params=21)
register_model("gpt-oss-120b", hf="openai/gpt-oss-120b", ms="openai/gpt-oss-120b", template="gpt_oss",
               family="gpt-oss", notes=f"{_REASONS} {moe_note('117B', '5.1B')} {MULTI_GPU_NOTE}", params=117)
