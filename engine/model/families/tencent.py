"""Tencent Hunyuan (`hunyuan`; the small translation model `hunyuan_small`), published under `tencent/` on Hugging
Face and `Tencent-Hunyuan/` on ModelScope."""

from engine.model.families.registry import moe_note, register_family, register_model

register_family("hunyuan", "Hunyuan")

_LICENCE = "Tencent's licence does not cover the EU, the UK or South Korea."
_THINKS = "Thinks before answering unless told /no_think."


def _hunyuan(name: str, repo: str, *, template: str = "hunyuan", params: float | str, notes: str) -> None:
    register_model(name, hf=f"tencent/{repo}", ms=f"Tencent-Hunyuan/{repo}", template=template, family="hunyuan",
                   notes=f"{notes} {_LICENCE}".strip(), params=params)


_hunyuan("Hunyuan-A13B-Instruct", "Hunyuan-A13B-Instruct", params=80, notes=f"{_THINKS} {moe_note('80B', '13B')}")
for size in ("7B", "4B", "1.8B", "0.5B"):
    _hunyuan(f"Hunyuan-{size}-Instruct", f"Hunyuan-{size}-Instruct", params=size, notes=_THINKS)
_TRANSLATES = "Translation model."
_hunyuan("HY-MT1.5-7B", "HY-MT1.5-7B", params="7B", notes=_TRANSLATES)
_hunyuan("HY-MT1.5-1.8B", "HY-MT1.5-1.8B", template="hunyuan_small", params="1.8B", notes=_TRANSLATES)
_hunyuan("Hunyuan-MT-7B", "Hunyuan-MT-7B", params="7B", notes=_TRANSLATES)
