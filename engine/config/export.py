"""Export settings of our own (GGUF, Ollama, parity check, hub visibility); the LLaMA-Factory export keys live in
`ModelArguments` so existing configs keep loading unchanged."""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.fields import option

# What the `gguf` package can write from Python: float types and the legacy block quantizations (no k-quants).
GGUF_TYPES = ["none", "f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0"]


@dataclass
class ExportArguments:
    """What an export writes besides the merged weights, and how it is checked."""

    export_gguf: str = option("none", "Also write a GGUF file (llama.cpp, Ollama) of this type; `none` skips it.",
                              choices=GGUF_TYPES)
    export_ollama: bool = option(True, "Write an Ollama Modelfile beside the export (GPTQ exports have none).")
    export_parity: bool = option(True, "Compare greedy answers of the original and the exported model (parity.json).")
    export_hub_private: bool = option(True, "Create the hub repository as private when it does not exist yet.")
