"""Mistral AI, newest first: Ministral 3 (`ministral3`), Mistral Small 3.x and Devstral (`mistral_small`), Ministral
8B and Mistral NeMo (`ministral`), Mistral 7B, Mixtral and Codestral (`mistral`); and the models that chat in the
Zephyr format: Zephyr (a Mistral fine-tune) and TinyLlama.
"""

from engine.model.families.registry import (
    BASE_NOTE,
    MULTI_GPU_NOTE,
    MULTIMODAL_NOTE,
    moe_note,
    register_family,
    register_model,
)

register_family("mistral", "Mistral")
register_family("zephyr", "Zephyr")
register_family("tinyllama", "TinyLlama")

for size in ("3B", "8B", "14B"):
    repo = f"mistralai/Ministral-3-{size}-Instruct-2512"
    register_model(f"Ministral-3-{size}-Instruct-2512", hf=repo, ms=repo, template="ministral3", family="mistral",
                   notes=MULTIMODAL_NOTE, params=size)
    repo = f"mistralai/Ministral-3-{size}-Base-2512"
    register_model(f"Ministral-3-{size}-Base-2512", hf=repo, ms=repo, template="ministral3", family="mistral",
                   notes=f"{BASE_NOTE} {MULTIMODAL_NOTE}", params=size)

for name, notes in (("Mistral-Small-3.2-24B-Instruct-2506", MULTIMODAL_NOTE),
                    ("Mistral-Small-3.1-24B-Instruct-2503", MULTIMODAL_NOTE),
                    ("Mistral-Small-3.1-24B-Base-2503", f"{BASE_NOTE} {MULTIMODAL_NOTE}"),
                    ("Mistral-Small-24B-Instruct-2501", ""),
                    ("Mistral-Small-24B-Base-2501", BASE_NOTE),
                    ("Devstral-Small-2507", "Tuned for coding agents that edit whole repositories.")):
    register_model(name, hf=f"mistralai/{name}", ms=f"mistralai/{name}", template="mistral_small", family="mistral",
                   notes=notes, params="24B")

register_model("Pixtral-12B", hf="mistral-community/pixtral-12b", ms="AI-ModelScope/pixtral-12b", template="pixtral",
               family="mistral", params="12B",
               notes="Reads images at their own shape; the vision encoder stays fixed unless freeze_vision_tower is off.")

register_model("Ministral-8B-Instruct-2410", hf="mistralai/Ministral-8B-Instruct-2410",
               ms="mistralai/Ministral-8B-Instruct-2410", template="ministral", family="mistral", params="8B",
               notes="Mistral Research Licence: non-commercial use only. Gated: accept it on the Hugging Face page.")
register_model("Mistral-Nemo-Instruct-2407", hf="mistralai/Mistral-Nemo-Instruct-2407",
               ms="AI-ModelScope/Mistral-Nemo-Instruct-2407", template="ministral", family="mistral", params="12B")
register_model("Mistral-Nemo-Base-2407", hf="mistralai/Mistral-Nemo-Base-2407", ms="LLM-Research/Mistral-Nemo-Base-2407",
               template="ministral", family="mistral", notes=BASE_NOTE, params="12B")

register_model("Mistral-7B-Instruct-v0.3", hf="mistralai/Mistral-7B-Instruct-v0.3",
               ms="LLM-Research/Mistral-7B-Instruct-v0.3", template="mistral", family="mistral",
               notes="Gated: accept the terms on the Hugging Face page first.", params="7B")
register_model("Mistral-7B-Instruct-v0.2", hf="mistralai/Mistral-7B-Instruct-v0.2",
               ms="AI-ModelScope/Mistral-7B-Instruct-v0.2", template="mistral", family="mistral", params="7B")
register_model("Mistral-7B-v0.3", hf="mistralai/Mistral-7B-v0.3", ms="LLM-Research/mistral-7b-v0.3",
               template="mistral", family="mistral", notes=BASE_NOTE, params="7B")
register_model("Mixtral-8x7B-Instruct-v0.1", hf="mistralai/Mixtral-8x7B-Instruct-v0.1",
               ms="AI-ModelScope/Mixtral-8x7B-Instruct-v0.1", template="mistral", family="mistral",
               notes=moe_note("47B", "13B"), params=47)
register_model("Mixtral-8x22B-Instruct-v0.1", hf="mistralai/Mixtral-8x22B-Instruct-v0.1",
               ms="AI-ModelScope/Mixtral-8x22B-Instruct-v0.1", template="mistral", family="mistral",
               notes=f"{moe_note('141B', '39B')} {MULTI_GPU_NOTE}", params=141)
register_model("Codestral-22B-v0.1", hf="mistralai/Codestral-22B-v0.1", ms="swift/Codestral-22B-v0.1",
               template="mistral", family="mistral", params="22B",
               notes="Code model. Mistral Non-Production Licence: no commercial use. Gated on Hugging Face.")

register_model("Zephyr-7B-beta", hf="HuggingFaceH4/zephyr-7b-beta", template="zephyr", family="zephyr", params="7B")
# TinyLlama's chat model was tuned on Zephyr's recipe and writes Zephyr's turn markers.
register_model("TinyLlama-1.1B-Chat-v1.0", hf="TinyLlama/TinyLlama-1.1B-Chat-v1.0",
               ms="AI-ModelScope/TinyLlama-1.1B-Chat-v1.0", template="zephyr", family="tinyllama", params="1.1B")
