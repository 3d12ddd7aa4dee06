"""Other open model makers: Cohere Command R and Aya (`cohere`), TII Falcon (`falcon`) and Falcon-H1 (`falcon_h1`),
LG EXAONE (`exaone`), LMSYS Vicuna (`vicuna`) and LLaVA (`llava`, `llava_next*`: llava-hf's conversions)."""

from engine.model.families.registry import (
    BASE_NOTE,
    MULTI_GPU_NOTE,
    REMOTE_CODE_NOTE,
    register_family,
    register_model,
)

register_family("cohere", "Cohere")
register_family("falcon", "Falcon")
register_family("exaone", "EXAONE")
register_family("vicuna", "Vicuna")
register_family("llava", "LLaVA")

_NON_COMMERCIAL = "Gated, non-commercial licence."
register_model("Command-R-35B", hf="CohereForAI/c4ai-command-r-v01", ms="AI-ModelScope/c4ai-command-r-v01",
               template="cohere", family="cohere", notes=_NON_COMMERCIAL, params="35B")
register_model("Command-R-35B-08-2024", hf="CohereForAI/c4ai-command-r-08-2024", template="cohere", family="cohere",
               notes=_NON_COMMERCIAL, params="32B")
register_model("Command-R-Plus-104B", hf="CohereForAI/c4ai-command-r-plus", ms="AI-ModelScope/c4ai-command-r-plus",
               template="cohere", family="cohere", notes=f"{_NON_COMMERCIAL} {MULTI_GPU_NOTE}", params="104B")
for size in ("8B", "35B"):
    register_model(f"Aya-23-{size}", hf=f"CohereForAI/aya-23-{size}", template="cohere", family="cohere",
                   notes=f"Multilingual (23 languages). {_NON_COMMERCIAL}", params=size)

_HYBRID = "Mixes Mamba-2 and attention layers."
for size in ("34B", "7B", "3B", "1.5B", "0.5B"):
    repo = f"tiiuae/Falcon-H1-{size}-Instruct"
    register_model(f"Falcon-H1-{size}-Instruct", hf=repo, ms=repo, template="falcon_h1", family="falcon",
                   notes=_HYBRID, params=size)
register_model("Falcon-7B-Instruct", hf="tiiuae/falcon-7b-instruct", ms="AI-ModelScope/falcon-7b-instruct",
               template="falcon", family="falcon", params="7B")
register_model("Falcon-40B-Instruct", hf="tiiuae/falcon-40b-instruct", ms="AI-ModelScope/falcon-40b-instruct",
               template="falcon", family="falcon", params="40B")
register_model("Falcon-7B", hf="tiiuae/falcon-7b", ms="AI-ModelScope/falcon-7b", template="falcon", family="falcon",
               notes=BASE_NOTE, params="7B")

register_model("EXAONE-3.0-7.8B-Instruct", hf="LGAI-EXAONE/EXAONE-3.0-7.8B-Instruct", template="exaone",
               family="exaone", notes=f"Korean and English. Non-commercial licence. {REMOTE_CODE_NOTE}", params="7.8B")

register_model("Vicuna-7B-v1.5", hf="lmsys/vicuna-7b-v1.5", ms="Xorbits/vicuna-7b-v1.5", template="vicuna",
               family="vicuna", params="7B")
register_model("Vicuna-13B-v1.5", hf="lmsys/vicuna-13b-v1.5", ms="Xorbits/vicuna-13b-v1.5", template="vicuna",
               family="vicuna", params="13B")

# LLaVA reads images, trained here with its vision side; LLaVA-NeXT tiles each image at a higher resolution.
_LLAVA = "Reads images; the vision encoder stays fixed unless freeze_vision_tower is off."
for size in ("7B", "13B"):
    register_model(f"LLaVA-1.5-{size}-Chat", hf=f"llava-hf/llava-1.5-{size.lower()}-hf",
                   ms=f"swift/llava-1.5-{size.lower()}-hf", template="llava", family="llava", notes=_LLAVA,
                   params=size)
    register_model(f"LLaVA-NeXT-{size}-Chat", hf=f"llava-hf/llava-v1.6-vicuna-{size.lower()}-hf",
                   ms=f"swift/llava-v1.6-vicuna-{size.lower()}-hf", template="llava_next", family="llava",
                   notes=_LLAVA, params=size)
register_model("LLaVA-NeXT-Mistral-7B-Chat", hf="llava-hf/llava-v1.6-mistral-7b-hf",
               ms="swift/llava-v1.6-mistral-7b-hf", template="llava_next_mistral", family="llava", notes=_LLAVA,
               params="7B")
register_model("LLaVA-NeXT-Llama3-8B-Chat", hf="llava-hf/llama3-llava-next-8b-hf", ms="swift/llama3-llava-next-8b-hf",
               template="llava_next_llama3", family="llava", notes=_LLAVA, params="8B")
register_model("LLaVA-NeXT-34B-Chat", hf="llava-hf/llava-v1.6-34b-hf", ms="LLM-Research/llava-v1.6-34b-hf",
               template="llava_next_yi", family="llava", notes=_LLAVA, params="34B")
register_model("LLaVA-NeXT-72B-Chat", hf="llava-hf/llava-next-72b-hf", ms="AI-ModelScope/llava-next-72b-hf",
               template="llava_next_qwen", family="llava", notes=f"{_LLAVA} {MULTI_GPU_NOTE}", params="72B")
register_model("LLaVA-NeXT-110B-Chat", hf="llava-hf/llava-next-110b-hf", ms="AI-ModelScope/llava-next-110b-hf",
               template="llava_next_qwen", family="llava", notes=f"{_LLAVA} {MULTI_GPU_NOTE}", params="110B")
