"""Hugging Face SmolLM: SmolLM3 (ChatML, hybrid reasoning), SmolLM2 (`smollm2`) and SmolLM (`smollm`): small
models that fine-tune on a laptop. Published under `HuggingFaceTB/` (Apache-2.0)."""

from engine.model.families.registry import BASE_NOTE, register_family, register_model

register_family("smollm", "SmolLM")

# LLaMA-Factory 0.9.5 has no SmolLM3 template; its turns are ChatML, as `smollm` writes them.
register_model("SmolLM3-3B", hf="HuggingFaceTB/SmolLM3-3B", template="smollm", family="smollm", params="3B",
               notes="Thinks in <think> blocks unless the system prompt says /no_think.")
register_model("SmolLM3-3B-Base", hf="HuggingFaceTB/SmolLM3-3B-Base", template="smollm", family="smollm",
               params="3B", notes=BASE_NOTE)

for generation, template in (("SmolLM2", "smollm2"), ("SmolLM", "smollm")):
    for size in ("135M", "360M", "1.7B"):
        repo = f"HuggingFaceTB/{generation}-{size}-Instruct"
        register_model(f"{generation}-{size}-Instruct", hf=repo, ms=repo, template=template, family="smollm",
                       notes="Small enough to fine-tune on a laptop CPU.", params=size)
    for size in ("135M", "360M", "1.7B"):
        repo = f"HuggingFaceTB/{generation}-{size}"
        register_model(f"{generation}-{size}", hf=repo, ms=repo, template=template, family="smollm", notes=BASE_NOTE,
                       params=size)
