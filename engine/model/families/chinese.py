"""Other Chinese labs: Xiaomi MiMo (`mimo`, `mimo_v2`; MiMo-VL `mimo_vl`), OpenBMB MiniCPM 4 (`cpm4`), 01.AI Yi
(`yi`; Yi-VL `yi_vl`), Shanghai AI Lab InternLM 2.5 / 3 (`intern2`) and InternVL (`intern_vl`), and Baichuan 2
(`baichuan2`)."""

from engine.model.families.registry import (
    BASE_NOTE,
    MULTI_GPU_NOTE,
    REMOTE_CODE_NOTE,
    moe_note,
    register_family,
    register_model,
)

register_family("mimo", "MiMo")
register_family("minicpm", "MiniCPM")
register_family("yi", "Yi")
register_family("internlm", "InternLM")
register_family("internvl", "InternVL")
register_family("baichuan", "Baichuan")

register_model("MiMo-V2-Flash", hf="XiaomiMiMo/MiMo-V2-Flash", ms="XiaomiMiMo/MiMo-V2-Flash", template="mimo_v2",
               family="mimo", notes=f"{moe_note('309B', '15B')} {MULTI_GPU_NOTE}", params=309)
# MiMo-VL: a Qwen2.5-VL model (vision encoder, MiMo-7B language model) that reasons; images and video.
_MIMO_VL = "Reads images and video; the vision encoder stays fixed unless freeze_vision_tower is off."
for repo in ("MiMo-VL-7B-RL-2508", "MiMo-VL-7B-SFT-2508", "MiMo-VL-7B-RL", "MiMo-VL-7B-SFT"):
    register_model(repo, hf=f"XiaomiMiMo/{repo}", ms=f"XiaomiMiMo/{repo}", template="mimo_vl", family="mimo",
                   notes=f"Thinks before answering. {_MIMO_VL}", params="8B")
for name, repo, notes in (("MiMo-7B-RL", "MiMo-7B-RL", "Reasoning model for mathematics and code."),
                          ("MiMo-7B-SFT", "MiMo-7B-SFT", "Instruction-tuned, before MiMo-7B-RL's reinforcement "
                                                         "learning."),
                          ("MiMo-7B-Base", "MiMo-7B-Base", BASE_NOTE)):
    register_model(name, hf=f"XiaomiMiMo/{repo}", ms=f"XiaomiMiMo/{repo}", template="mimo", family="mimo",
                   notes=f"{notes} {REMOTE_CODE_NOTE}", params="7B")

for name, repo, size in (("MiniCPM4.1-8B", "MiniCPM4.1-8B", "8B"), ("MiniCPM4-8B", "MiniCPM4-8B", "8B"),
                         ("MiniCPM4-0.5B", "MiniCPM4-0.5B", "0.5B")):
    register_model(name, hf=f"openbmb/{repo}", ms=f"OpenBMB/{repo}", template="cpm4", family="minicpm",
                   notes=REMOTE_CODE_NOTE, params=size)

for size in ("6B", "9B", "34B"):
    register_model(f"Yi-1.5-{size}-Chat", hf=f"01-ai/Yi-1.5-{size}-Chat", ms=f"01ai/Yi-1.5-{size}-Chat",
                   template="yi", family="yi", params=size)
_YI_VL = "Reads images (a LLaVA model); the vision encoder stays fixed unless freeze_vision_tower is off."
for size in ("6B", "34B"):  # converted to transformers' LLaVA classes by a community member
    register_model(f"Yi-VL-{size}-Chat", hf=f"BUAADreamer/Yi-VL-{size}-hf", template="yi_vl", family="yi",
                   notes=_YI_VL, params=size)

register_model("InternLM3-8B-Instruct", hf="internlm/internlm3-8b-instruct",
               ms="Shanghai_AI_Laboratory/internlm3-8b-instruct", template="intern2", family="internlm",
               notes=REMOTE_CODE_NOTE, params="8B")
for size, repo in (("1.8B", "internlm2_5-1_8b-chat"), ("7B", "internlm2_5-7b-chat"), ("20B", "internlm2_5-20b-chat")):
    register_model(f"InternLM2.5-{size}-Chat", hf=f"internlm/{repo}", ms=f"Shanghai_AI_Laboratory/{repo}",
                   template="intern2", family="internlm", notes=REMOTE_CODE_NOTE, params=size)

for size in ("7B", "13B"):
    register_model(f"Baichuan2-{size}-Chat", hf=f"baichuan-inc/Baichuan2-{size}-Chat",
                   ms=f"baichuan-inc/Baichuan2-{size}-Chat", template="baichuan2", family="baichuan",
                   notes=REMOTE_CODE_NOTE, params=size)

# InternVL in transformers' own format (the "-hf" repositories; the original ones run remote code).
_INTERNVL = "Reads images in tiles; the vision encoder stays fixed unless freeze_vision_tower is off."
for size in ("1B", "2B", "4B", "8B", "14B", "30B-A3B", "38B"):
    repo = f"OpenGVLab/InternVL3_5-{size}-HF"
    register_model(f"InternVL3.5-{size}", hf=repo, ms=repo, template="intern_vl", family="internvl",
                   params=size.partition("-A")[0],
                   notes=_INTERNVL if "-A" not in size else f"{_INTERNVL} {moe_note('30B', '3B')}")
for size in ("1B", "2B", "8B", "14B", "38B", "78B"):
    repo = f"OpenGVLab/InternVL3-{size}-hf"
    register_model(f"InternVL3-{size}", hf=repo, ms=repo, template="intern_vl", family="internvl", params=size,
                   notes=f"{_INTERNVL} {MULTI_GPU_NOTE}" if size == "78B" else _INTERNVL)
