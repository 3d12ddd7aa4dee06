"""The transformers backend: `model.generate` on the CPU or a GPU, full precision or bitsandbytes-quantized.

Streaming runs `generate` in a thread that feeds a `TextIteratorStreamer`. One request generates at a time (a
lock), so a `seed` gives the same reply every time and memory holds one batch. Stop strings are checked by a
stopping criterion on the decoded tail of each sequence; the reply text is cut where the first one begins.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from functools import cache
from typing import Any

from engine.inference.backend import ChatBackend, Completion, Sampling, StopMatcher, find_stop

logger = logging.getLogger(__name__)


@cache
def _criteria_classes() -> tuple[type, type]:
    """Stopping criteria (defined lazily: transformers is imported only when the backend loads)."""
    import torch
    from transformers import StoppingCriteria

    class StopStrings(StoppingCriteria):
        """Ends a sequence once its decoded reply contains a stop string; remembers where each one stopped."""

        def __init__(self, tokenizer: Any, stops: tuple[str, ...], prompt_len: int, skip_special: bool) -> None:
            self.tokenizer, self.stops, self.prompt_len, self.skip_special = tokenizer, stops, prompt_len, skip_special
            # Every token decodes to at least one character, except byte pieces: allow a few more tokens.
            self.window = max(len(s) for s in stops) + 8
            self.stopped_at: dict[int, int] = {}

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = []
            for row, ids in enumerate(input_ids):
                if row in self.stopped_at:
                    done.append(True)
                    continue
                tail = ids[max(self.prompt_len, len(ids) - self.window):]
                text = self.tokenizer.decode(tail, skip_special_tokens=self.skip_special)
                hit = find_stop(text, self.stops) >= 0
                if hit:
                    self.stopped_at[row] = len(ids) - self.prompt_len
                done.append(hit)
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    class Cancelled(StoppingCriteria):
        """Ends generation when the client went away."""

        def __init__(self, event: threading.Event) -> None:
            self.event = event

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)

    return StopStrings, Cancelled


class HFBackend(ChatBackend):
    """A transformers model with its tokenizer and template, loaded by `engine.model.load_model`."""

    def __init__(self, model: Any, tokenizer: Any, template: Any, defaults: Sampling, model_id: str,
                 plugin: Any = None) -> None:
        self.model, self.tokenizer, self.template, self.plugin = model, tokenizer, template, plugin
        self.defaults, self.model_id = defaults, model_id
        config = getattr(model, "config", None)
        self.context_length = getattr(config, "max_position_embeddings", None)
        self._lock = threading.Lock()
        self._stop_ids = self.stop_token_ids()
        native = getattr(getattr(model, "generation_config", None), "eos_token_id", None)  # the model's own end
        for token in native if isinstance(native, list) else [native]:
            if token is not None and token not in self._stop_ids:
                self._stop_ids.append(token)

    @classmethod
    def load(cls, config: Any, model_id: str) -> HFBackend:
        """Tokenizer → template → model (base + adapters, quantized when `quantization_bit` is set)."""
        from engine.model.chat_template import load_template
        from engine.model.loader import load_model, load_tokenizer, resolve_model_folder
        from engine.multimodal.plugins import get_plugin

        tokenizer = load_tokenizer(config.model)
        template = load_template(config.model.template, resolve_model_folder(config.model), tokenizer, config.data.tool_format)
        model = load_model(tokenizer, config.model, config.finetuning, is_trainable=False)
        plugin = get_plugin(template, tokenizer, config.model)
        return cls(model, tokenizer, template, Sampling.from_config(config.generation), model_id, plugin)

    def close(self) -> None:
        """Drop the model and return GPU memory."""
        import gc

        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ------------------------------------------------------------ generation

    def _generation_kwargs(self, prompt_ids: list[int], sampling: Sampling, rows: int,
                           extra_criteria: list[Any]) -> tuple[dict[str, Any], Any]:
        import torch
        from transformers import GenerationConfig, StoppingCriteriaList

        stop_strings_cls, _ = _criteria_classes()
        options: dict[str, Any] = {
            "max_new_tokens": sampling.max_new_tokens,
            "repetition_penalty": sampling.repetition_penalty,
            "eos_token_id": self._stop_ids or None,
            "pad_token_id": self.tokenizer.pad_token_id,
            "num_return_sequences": rows,
            "do_sample": sampling.do_sample,
            "use_cache": True,
        }
        if sampling.do_sample:  # greedy decoding would warn about sampling-only flags
            options.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k)
        # Quantized or dispatched models report where inputs go; plain ones are on one device.
        device = getattr(self.model, "device", None) or next(self.model.parameters()).device
        input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)
        criteria = list(extra_criteria)
        stop_strings = None
        if sampling.stop:
            stop_strings = stop_strings_cls(self.tokenizer, sampling.stop, len(prompt_ids),
                                            sampling.skip_special_tokens)
            criteria.append(stop_strings)
        kwargs = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "generation_config": GenerationConfig(**options),
            "stopping_criteria": StoppingCriteriaList(criteria),
        }
        media_inputs = getattr(prompt_ids, "inputs", None)
        if media_inputs:
            dtype = next(self.model.parameters()).dtype
            for key, value in media_inputs.items():
                kwargs[key] = value.to(device, dtype=dtype) if value.is_floating_point() else value.to(device)
            from engine.multimodal.plugins import token_inputs

            kwargs.update(token_inputs(self.plugin, {**kwargs, "input_ids": input_ids}))
        return kwargs, stop_strings

    def _seed(self, sampling: Sampling) -> None:
        if sampling.seed is not None:
            from transformers import set_seed

            set_seed(sampling.seed)

    def _row_result(self, row: list[int], row_index: int, prompt_len: int, sampling: Sampling,
                    stop_strings: Any) -> tuple[list[int], int, str]:
        """(reply ids to decode, tokens generated, finish reason) of one generated row."""
        if stop_strings is not None and row_index in stop_strings.stopped_at:
            count = stop_strings.stopped_at[row_index]
            return row[:count], count, "stop"
        stop_at = next((i for i, token in enumerate(row) if token in self._stop_ids), None)
        if stop_at is not None:
            return row[:stop_at], stop_at + 1, "stop"
        return row, len(row), "length" if len(row) >= sampling.max_new_tokens else "stop"

    def _decode(self, ids: list[int], sampling: Sampling) -> str:
        text = self.tokenizer.decode(ids, skip_special_tokens=sampling.skip_special_tokens)
        cut = find_stop(text, sampling.stop)
        return text[:cut] if cut >= 0 else text

    def _complete(self, prompt_ids: list[int], sampling: Sampling) -> list[Completion]:
        import torch

        rows = 1 if sampling.greedy else sampling.n  # greedy choices are all the same reply
        kwargs, stop_strings = self._generation_kwargs(prompt_ids, sampling, rows, [])
        with self._lock, torch.inference_mode():
            self._seed(sampling)
            output = self.model.generate(**kwargs)
        results = []
        for index, row in enumerate(output[:, len(prompt_ids):].tolist()):
            ids, count, reason = self._row_result(row, index, len(prompt_ids), sampling, stop_strings)
            results.append(Completion(self._decode(ids, sampling), len(prompt_ids), count, reason))
        return results * sampling.n if rows == 1 else results

    def _stream(self, prompt_ids: list[int], sampling: Sampling) -> Iterator[str | Completion]:
        import torch

        _, cancelled_cls = _criteria_classes()
        cancel = threading.Event()
        streamer = _reply_streamer_class()(self.tokenizer, set(self._stop_ids),
                                           skip_special_tokens=sampling.skip_special_tokens)
        kwargs, stop_strings = self._generation_kwargs(prompt_ids, sampling, 1, [cancelled_cls(cancel)])
        outcome: dict[str, Any] = {}

        def run() -> None:
            # The lock is held by the generating thread, not by the reader: a reader that is never resumed nor
            # closed (an abandoned stream) blocks other requests for at most max_new_tokens.
            try:
                with self._lock, torch.inference_mode():
                    self._seed(sampling)
                    outcome["output"] = self.model.generate(**kwargs, streamer=streamer)
            except BaseException as exc:  # noqa: BLE001 - handed to the reading thread, which raises it
                outcome["error"] = exc
                streamer.end()

        matcher = StopMatcher(sampling.stop)
        thread = threading.Thread(target=run, name="generate", daemon=True)
        thread.start()
        try:
            for piece in streamer:
                shown = matcher.feed(piece)
                if shown:
                    yield shown
            thread.join()
        finally:
            cancel.set()  # a reader that stops early (a client gone, Ctrl-C) ends the generation
            thread.join()
        if "error" in outcome:
            raise outcome["error"]
        tail = matcher.flush()
        if tail:
            yield tail
        row = outcome["output"][0, len(prompt_ids):].tolist()
        _, count, reason = self._row_result(row, 0, len(prompt_ids), sampling, stop_strings)
        yield Completion(matcher.text, len(prompt_ids), count, reason)


@cache
def _reply_streamer_class() -> type:
    """A `TextIteratorStreamer` for the reply only (prompt skipped) that leaves out the end-of-turn tokens."""
    from transformers import TextIteratorStreamer

    class ReplyStreamer(TextIteratorStreamer):
        def __init__(self, tokenizer: Any, stop_ids: set[int], **decode_kwargs: Any) -> None:
            super().__init__(tokenizer, skip_prompt=True, **decode_kwargs)
            self.stop_ids = stop_ids

        def put(self, value: Any) -> None:
            if self.next_tokens_are_prompt:
                super().put(value)  # the prompt: skipped by skip_prompt
                return
            tokens = [token for token in value.reshape(-1).tolist() if token not in self.stop_ids]
            if tokens:
                super().put(value.new_tensor(tokens))

    return ReplyStreamer
