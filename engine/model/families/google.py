"""Google Gemma, newest first: Gemma 4 (`gemma4`; the small E2B/E4B `gemma4n`), Gemma 3n (`gemma3n`), Gemma 3
(`gemma3`; the text-only 270M and 1B `gemma2`, as LLaMA-Factory pairs them), PaliGemma 2 and 1 (`paligemma`),
MedGemma and Gemma 2 (`gemma2`).

Gemma 2, 3 and 3n repositories are gated on Hugging Face (Google's Gemma terms); Gemma 4 is Apache-2.0 and open.
ModelScope mirrors Gemma 2 to 3n under `LLM-Research/`.
"""

from engine.model.families.registry import BASE_NOTE, MULTIMODAL_NOTE, moe_note, register_family, register_model

register_family("gemma", "Gemma")

_GATED = "Gated: accept Google's terms on the Hugging Face page first."
# "E4B": about 4B parameters at work per token; per-layer embeddings bring the total to 8B (5.1B for E2B).
_EFFECTIVE = "Made for phones and laptops: {effective} parameters at work, {total} in all."
_THINKS = "Thinks before answering (its template switches thinking on)."
_MEDIA = "Also reads images and audio; only its text side is trained here."

register_model("Gemma-4-31B-Instruct", hf="google/gemma-4-31B-it", template="gemma4", family="gemma",
               notes=f"{_THINKS} {MULTIMODAL_NOTE}", params="31B")
register_model("Gemma-4-26B-A4B-Instruct", hf="google/gemma-4-26B-A4B-it", template="gemma4", family="gemma",
               notes=f"{_THINKS} {MULTIMODAL_NOTE} {moe_note('26B', '4B')}", params="26B")
for effective, total in (("E4B", 8), ("E2B", 5.1)):
    register_model(f"Gemma-4-{effective}-Instruct", hf=f"google/gemma-4-{effective}-it", template="gemma4n",
                   family="gemma", params=total,
                   notes=f"{_THINKS} {_EFFECTIVE.format(effective=effective[1:], total=f'{total}B')} {_MEDIA}")

for effective, total in (("E4B", 8), ("E2B", 5)):
    about = _EFFECTIVE.format(effective=effective[1:], total=f"{total}B")
    register_model(f"Gemma-3n-{effective}-Instruct", hf=f"google/gemma-3n-{effective}-it",
                   ms=f"LLM-Research/gemma-3n-{effective}-it", template="gemma3n", family="gemma",
                   notes=f"{about} {_MEDIA} {_GATED}", params=total)
    register_model(f"Gemma-3n-{effective}", hf=f"google/gemma-3n-{effective}", ms=f"LLM-Research/gemma-3n-{effective}",
                   template="gemma3n", family="gemma", notes=f"{BASE_NOTE} {about} {_GATED}", params=total)

# Gemma 3 from 4B up reads images, trained here with its vision side (template gemma3).
_VISION = "Reads images; the vision encoder stays fixed unless freeze_vision_tower is off."
for size in ("4b", "12b", "27b"):
    register_model(f"Gemma-3-{size.upper()}-Instruct", hf=f"google/gemma-3-{size}-it",
                   ms=f"LLM-Research/gemma-3-{size}-it", template="gemma3", family="gemma",
                   notes=f"{_VISION} {_GATED}", params=size)
for size in ("270m", "1b"):
    register_model(f"Gemma-3-{size.upper()}-Instruct", hf=f"google/gemma-3-{size}-it",
                   ms=f"LLM-Research/gemma-3-{size}-it", template="gemma2", family="gemma",
                   notes=f"Text only. {_GATED}", params=size)
for size in ("4b", "12b", "27b"):
    register_model(f"Gemma-3-{size.upper()}", hf=f"google/gemma-3-{size}-pt", ms=f"LLM-Research/gemma-3-{size}-pt",
                   template="gemma3", family="gemma", notes=f"{BASE_NOTE} {_VISION} {_GATED}", params=size)
register_model("Gemma-3-1B", hf="google/gemma-3-1b-pt", ms="LLM-Research/gemma-3-1b-pt", template="gemma2",
               family="gemma", notes=f"{BASE_NOTE} Text only. {_GATED}", params="1B")
register_model("Gemma-3-270M", hf="google/gemma-3-270m", ms="LLM-Research/gemma-3-270m", template="gemma2",
               family="gemma", notes=f"{BASE_NOTE} Text only. {_GATED}", params="270M")

# PaliGemma: pt checkpoints are pre-trained to be fine-tuned on one task; mix ones already follow a mix of tasks.
_PALI = ("Reads one image size ({res} px; other sizes are scaled to it) in front of a short task prompt; the vision "
         "encoder stays fixed unless freeze_vision_tower is off.")
for size in ("3b", "10b", "28b"):
    for kind, resolutions in (("mix", ("224", "448")), ("pt", ("224", "448", "896"))):
        for res in resolutions:
            repo = f"paligemma2-{size}-{kind}-{res}"
            register_model(f"PaliGemma2-{size.upper()}-{kind}-{res}", hf=f"google/{repo}",
                           ms=f"AI-ModelScope/{repo}" if kind == "pt" else None, template="paligemma",
                           family="gemma", params=size, notes=f"{_PALI.format(res=res)} {_GATED}")
for kind, resolutions in (("mix", ("224", "448")), ("pt", ("224", "448", "896"))):
    for res in resolutions:
        repo = f"paligemma-3b-{kind}-{res}"
        register_model(f"PaliGemma-3B-{kind}-{res}", hf=f"google/{repo}", ms=f"AI-ModelScope/{repo}",
                       template="paligemma", family="gemma", params="3B", notes=f"{_PALI.format(res=res)} {_GATED}")

# A text-only Gemma 3: gemma's layout (the same as gemma3's, which is for the models that read images).
register_model("MedGemma-27B-Text-Instruct", hf="google/medgemma-27b-text-it", ms="google/medgemma-27b-text-it",
               template="gemma", family="gemma", params="27B",
               notes="Gemma 3 trained further on medical text. Gated: accept the Health AI Developer Foundations "
                     "terms on the Hugging Face page first.")

for size in ("2b", "9b", "27b"):
    register_model(f"Gemma-2-{size.upper()}-Instruct", hf=f"google/gemma-2-{size}-it",
                   ms=f"LLM-Research/gemma-2-{size}-it", template="gemma2", family="gemma", notes=_GATED, params=size)
