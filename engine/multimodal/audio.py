"""The Qwen2-Audio media plugin: how a model that hears turns `<audio>` placeholders into tokens and features.

Qwen2-Audio reads a clip as Whisper's log-mel features, always padded (or cut) to the feature extractor's fixed
window, with an attention mask saying how many frames are sound. Its encoder halves those frames twice (a strided
convolution, then average pooling), and the language model gets one `<|AUDIO|>` token per pooled frame, between
`<|audio_bos|>` and `<|audio_eos|>`. The count depends only on the clip's length, so tokenizing never computes a
spectrogram: the collator does, batch by batch.

The model takes no `mm_token_type_ids` (generation refuses that argument), so `token_type_ids` gives None.
"""

from __future__ import annotations

from typing import Any

from engine.errors import DataError


class Qwen2AudioPlugin:
    """Qwen2-Audio: audio clips (see the module docstring)."""

    name = "qwen2_audio"
    kinds = ("audios",)

    def __init__(self, feature_extractor: Any, tokenizer: Any, settings: Any) -> None:
        self.token, self.start, self.end = "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"
        vocab = tokenizer.get_vocab()
        missing = [t for t in (self.token, self.start, self.end) if t not in vocab]
        if missing:
            raise DataError("media_tokens_missing", template=self.name, tokens=", ".join(missing))
        self.token_id = vocab[self.token]
        self.processor = feature_extractor
        self.sampling_rate = int(settings.audio_sampling_rate)
        extractor_rate = int(getattr(feature_extractor, "sampling_rate", self.sampling_rate))
        if extractor_rate != self.sampling_rate:  # the mel filters are built for one rate: a mismatch hears wrong
            raise DataError("audio_rate_mismatch", template=self.name, rate=self.sampling_rate, model=extractor_rate)
        self.hop = int(feature_extractor.hop_length)
        self.window = int(feature_extractor.n_samples)  # samples in the fixed window; longer clips are cut

    def load(self, media: dict[str, list]) -> dict[str, list]:
        """The clips of one example or request, as mono float32 samples at the run's sampling rate (a numpy array
        is taken as such samples already, as LLaMA-Factory takes it)."""
        import numpy as np

        from engine.data.media import load_audio

        return {"audios": [np.asarray(ref, dtype=np.float32) if isinstance(ref, np.ndarray)
                           else load_audio(ref, sampling_rate=self.sampling_rate) for ref in media.get("audios") or []]}

    def token_counts(self, loaded: dict[str, list]) -> dict[str, list[int]]:
        """How many `<|AUDIO|>` tokens each clip fills: its unmasked frames (as the feature extractor's mask counts
        them, ceil(samples / hop) within the window), halved by the strided convolution, then by the pooling."""
        counts = []
        for samples in loaded["audios"]:
            frames = -(-min(len(samples), self.window) // self.hop)
            after_conv = (frames - 1) // 2 + 1
            counts.append(max((after_conv - 2) // 2 + 1, 0))
        return {"audios": counts}

    def expand(self, messages: list[dict], counts: dict[str, list[int]], placeholders: dict[str, str]) -> list[dict]:
        """The messages with each `<audio>` replaced by bos + one token per pooled frame + eos, in order."""
        queue, placeholder = list(counts.get("audios") or []), placeholders["audios"]
        out = []
        for message in messages:
            text = message.get("content") or ""
            while placeholder in text and queue:
                text = text.replace(placeholder, self.start + self.token * queue.pop(0) + self.end, 1)
            out.append({**message, "content": text})
        return out

    def expected_tokens(self, counts: dict[str, list[int]]) -> dict[int, int]:
        """Token id → how many of it a fully kept example holds."""
        return {self.token_id: sum(counts.get("audios") or [])}

    def features(self, batch: list[dict[str, list]]) -> dict[str, Any]:
        """`input_features` (clips, mel bins, window frames) and `feature_attention_mask` (clips, window frames)
        for every clip of a batch, in order (each entry one example's `load` result)."""
        import numpy as np
        import torch

        clips = [samples for loaded in batch for samples in loaded["audios"]]
        if not clips:
            return {}
        result = self.processor(clips, sampling_rate=self.sampling_rate, return_attention_mask=True,
                                padding="max_length", return_tensors="np")
        return {"input_features": torch.from_numpy(np.asarray(result["input_features"], dtype=np.float32)),
                "feature_attention_mask": torch.from_numpy(np.asarray(result["attention_mask"], dtype=np.int64))}

    def token_type_ids(self, input_ids: Any) -> None:
        """None: Qwen2-Audio has no `mm_token_type_ids` input."""
        return None
