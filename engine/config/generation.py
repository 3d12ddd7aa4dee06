"""Sampling settings for chat, the API server and predictions."""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.fields import option


@dataclass
class GeneratingArguments:
    """How replies are sampled."""

    do_sample: bool = option(True, "Sample (otherwise greedy decoding).")
    temperature: float = option(0.95, "Sampling temperature.", min=0.0, max=2.0, step=0.01)
    top_p: float = option(0.7, "Nucleus sampling: keep the smallest set of tokens with this probability.",
                          min=0.0, max=1.0, exclusive_min=True, step=0.01)
    top_k: int = option(50, "Keep only the k most likely tokens.", min=0)
    num_beams: int = option(1, "Beam search width (1: no beam search).", min=1)
    max_length: int = option(1024, "Longest prompt plus reply in tokens (overridden by max_new_tokens).", min=1)
    max_new_tokens: int = option(1024, "Longest reply in tokens.", min=1, max=131072)
    repetition_penalty: float = option(1.0, "Penalty for repeating tokens.", min=1.0, step=0.05)
    length_penalty: float = option(1.0, "Beam search length penalty.")
    skip_special_tokens: bool = option(True, "Hide special tokens in the reply.")
