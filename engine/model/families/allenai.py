"""Ai2 OLMo 2 (`olmo`): fully open models, with their training data and code published too."""

from engine.model.families.registry import register_family, register_model

register_family("olmo", "OLMo")

# LLaMA-Factory 0.9.5 lists only the first OLMo; OLMo 2 marks turns with the same <|user|> and
# <|assistant|> lines.
for release, size in (("0325", "32B"), ("1124", "13B"), ("1124", "7B"), ("0425", "1B")):
    name = f"OLMo-2-{release}-{size}-Instruct"
    register_model(name, hf=f"allenai/{name}", template="olmo", family="olmo", params=size)
