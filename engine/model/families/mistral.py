"""Mistral AI (`mistral`) and the models that chat in the Zephyr format: Zephyr (a Mistral fine-tune), TinyLlama."""

from engine.model.families.registry import register_model

register_model("Mistral-7B-Instruct-v0.3", hf="mistralai/Mistral-7B-Instruct-v0.3",
               ms="LLM-Research/Mistral-7B-Instruct-v0.3", template="mistral", family="mistral",
               notes="Gated: accept the terms on the Hugging Face page first.", params="7B")
register_model("Mistral-7B-Instruct-v0.2", hf="mistralai/Mistral-7B-Instruct-v0.2",
               ms="AI-ModelScope/Mistral-7B-Instruct-v0.2", template="mistral", family="mistral", params="7B")
register_model("Mistral-7B-v0.3", hf="mistralai/Mistral-7B-v0.3", ms="LLM-Research/mistral-7b-v0.3",
               template="mistral", family="mistral", notes="Pre-trained base model, not tuned for chat.", params="7B")
register_model("Mixtral-8x7B-Instruct-v0.1", hf="mistralai/Mixtral-8x7B-Instruct-v0.1",
               ms="AI-ModelScope/Mixtral-8x7B-Instruct-v0.1", template="mistral", family="mistral",
               notes="47B-parameter mixture of experts.", params=47)

register_model("Zephyr-7B-beta", hf="HuggingFaceH4/zephyr-7b-beta", template="zephyr", family="zephyr", params="7B")
# TinyLlama's chat model was tuned on Zephyr's recipe and writes Zephyr's turn markers.
register_model("TinyLlama-1.1B-Chat-v1.0", hf="TinyLlama/TinyLlama-1.1B-Chat-v1.0",
               ms="AI-ModelScope/TinyLlama-1.1B-Chat-v1.0", template="zephyr", family="tinyllama", params="1.1B")
