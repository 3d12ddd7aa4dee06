"""Liquid AI LFM2 and LFM2.5 (`lfm2`): small hybrid models (convolutions and attention) made for phones and laptops.
Liquid's LFM Open License allows commercial use only below a revenue threshold: read it before shipping a product."""

from engine.model.families.registry import BASE_NOTE, register_family, register_model

register_family("lfm", "LFM")

register_model("LFM2.5-1.2B-Instruct", hf="LiquidAI/LFM2.5-1.2B-Instruct", template="lfm2", family="lfm",
               params="1.2B")
register_model("LFM2.5-1.2B-Base", hf="LiquidAI/LFM2.5-1.2B-Base", template="lfm2", family="lfm", notes=BASE_NOTE,
               params="1.2B")
for size in ("2.6B", "1.2B", "700M", "350M"):
    register_model(f"LFM2-{size}", hf=f"LiquidAI/LFM2-{size}", template="lfm2", family="lfm", params=size)
