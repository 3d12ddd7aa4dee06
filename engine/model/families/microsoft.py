"""Microsoft Phi: Phi-3 / Phi-3.5 / Phi-4-mini (`phi`) and Phi-4 14B (`phi4`)."""

from engine.model.families.registry import register_model

register_model("Phi-3-mini-4k-Instruct", hf="microsoft/Phi-3-mini-4k-instruct",
               ms="LLM-Research/Phi-3-mini-4k-instruct", template="phi", family="phi", params=3.8)
register_model("Phi-3-mini-128k-Instruct", hf="microsoft/Phi-3-mini-128k-instruct",
               ms="LLM-Research/Phi-3-mini-128k-instruct", template="phi", family="phi", params=3.8)
register_model("Phi-3-medium-4k-Instruct", hf="microsoft/Phi-3-medium-4k-instruct",
               ms="LLM-Research/Phi-3-medium-4k-instruct", template="phi", family="phi", params=14)
register_model("Phi-3.5-mini-Instruct", hf="microsoft/Phi-3.5-mini-instruct",
               ms="LLM-Research/Phi-3.5-mini-instruct", template="phi", family="phi", params=3.8)
register_model("Phi-4-mini-Instruct", hf="microsoft/Phi-4-mini-instruct", ms="LLM-Research/Phi-4-mini-instruct",
               template="phi", family="phi", params=3.8)
register_model("Phi-4", hf="microsoft/phi-4", ms="LLM-Research/phi-4", template="phi4", family="phi", params=14)
