"""Baidu ERNIE 4.5: instruct models (`ernie_nothink`) and the 21B thinking model (`ernie`). The `-PT` repositories
hold the PyTorch (transformers) weights; Baidu publishes under `baidu/` and, on ModelScope, `PaddlePaddle/`."""

from engine.model.families.registry import MULTI_GPU_NOTE, moe_note, register_family, register_model

register_family("ernie", "ERNIE")


def _ernie(name: str, repo: str, *, template: str, params: float | str, notes: str = "") -> None:
    register_model(name, hf=f"baidu/{repo}", ms=f"PaddlePaddle/{repo}", template=template, family="ernie",
                   notes=notes, params=params)


_ernie("ERNIE-4.5-21B-A3B-Thinking", "ERNIE-4.5-21B-A3B-Thinking", template="ernie", params="21B",
       notes=f"Thinks before answering. {moe_note('21B', '3B')}")
_ernie("ERNIE-4.5-300B-A47B-Instruct", "ERNIE-4.5-300B-A47B-PT", template="ernie_nothink", params="300B",
       notes=f"{moe_note('300B', '47B')} {MULTI_GPU_NOTE}")
_ernie("ERNIE-4.5-21B-A3B-Instruct", "ERNIE-4.5-21B-A3B-PT", template="ernie_nothink", params="21B",
       notes=moe_note("21B", "3B"))
_ernie("ERNIE-4.5-0.3B-Instruct", "ERNIE-4.5-0.3B-PT", template="ernie_nothink", params=0.36)
