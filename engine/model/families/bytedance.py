"""ByteDance Seed: Seed-OSS (`seed_oss`) and Seed-Coder (`seed_coder`), published under `ByteDance-Seed/` on both
hubs."""

from engine.model.families.registry import BASE_NOTE, register_family, register_model

register_family("seed", "Seed")


def _seed(name: str, repo: str, *, template: str, params: float | str, notes: str = "") -> None:
    register_model(name, hf=f"ByteDance-Seed/{repo}", ms=f"ByteDance-Seed/{repo}", template=template, family="seed",
                   notes=notes, params=params)


_seed("Seed-OSS-36B-Instruct", "Seed-OSS-36B-Instruct", template="seed_oss", params="36B",
      notes="Thinks before answering, within a thinking budget you can set.")
_seed("Seed-OSS-36B-Base", "Seed-OSS-36B-Base", template="seed_oss", params="36B", notes=BASE_NOTE)
_seed("Seed-OSS-36B-Base-woSyn", "Seed-OSS-36B-Base-woSyn", template="seed_oss", params="36B",
      notes=f"{BASE_NOTE} Pre-trained without synthetic instruction data.")
_CODE = "Code model; its template's system prompt keeps it to computer science."
_seed("Seed-Coder-8B-Instruct", "Seed-Coder-8B-Instruct", template="seed_coder", params="8B", notes=_CODE)
_seed("Seed-Coder-8B-Reasoning", "Seed-Coder-8B-Reasoning-bf16", template="seed_coder", params="8B",
      notes=f"Reasons before answering. {_CODE}")
