"""Other open model makers: Cohere Command-R, TII Falcon, LMSYS Vicuna, Hugging Face SmolLM2, IBM Granite 3."""

from engine.model.families.registry import register_model

register_model("Command-R-35B", hf="CohereForAI/c4ai-command-r-v01", ms="AI-ModelScope/c4ai-command-r-v01",
               template="cohere", family="cohere", notes="Gated, non-commercial licence.", params="35B")
register_model("Command-R-35B-08-2024", hf="CohereForAI/c4ai-command-r-08-2024", template="cohere", family="cohere",
               notes="Gated, non-commercial licence.", params="32B")

register_model("Falcon-7B-Instruct", hf="tiiuae/falcon-7b-instruct", ms="AI-ModelScope/falcon-7b-instruct",
               template="falcon", family="falcon", params="7B")
register_model("Falcon-40B-Instruct", hf="tiiuae/falcon-40b-instruct", ms="AI-ModelScope/falcon-40b-instruct",
               template="falcon", family="falcon", params="40B")

register_model("Vicuna-7B-v1.5", hf="lmsys/vicuna-7b-v1.5", ms="Xorbits/vicuna-7b-v1.5", template="vicuna",
               family="vicuna", params="7B")
register_model("Vicuna-13B-v1.5", hf="lmsys/vicuna-13b-v1.5", ms="Xorbits/vicuna-13b-v1.5", template="vicuna",
               family="vicuna", params="13B")

for size in ("135M", "360M", "1.7B"):
    register_model(f"SmolLM2-{size}-Instruct", hf=f"HuggingFaceTB/SmolLM2-{size}-Instruct", template="chatml",
                   family="smollm", notes="Small enough to fine-tune on a laptop CPU.", params=size)

for size in ("2b", "8b"):
    register_model(f"Granite-3.1-{size.upper()}-Instruct", hf=f"ibm-granite/granite-3.1-{size}-instruct",
                   ms=f"AI-ModelScope/granite-3.1-{size}-instruct", template="granite3", family="granite", params=size)
