"""The vLLM backend: continuous batching on an NVIDIA GPU, LoRA adapters served through `LoRARequest`.

vLLM is imported only when this backend is chosen. Its engine is asynchronous; it runs on an event loop in a
thread of its own, and the synchronous `ChatBackend` methods submit requests to that loop.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from engine.inference.backend import ChatBackend, Completion, InferenceError, Sampling, StopMatcher

logger = logging.getLogger(__name__)

_DONE = object()


def check_vllm_available() -> None:
    """Raise a clear InferenceError when vLLM is not installed or no CUDA GPU is visible."""
    if importlib.util.find_spec("vllm") is None:
        raise InferenceError("vllm_missing")
    import torch

    if not torch.cuda.is_available():
        raise InferenceError("vllm_needs_cuda")


def engine_arguments(config: Any, model_path: str, adapters: list[str]) -> dict[str, Any]:
    """The `AsyncEngineArgs` keywords for this config (model, dtype, memory, LoRA, quantization)."""
    model = config.model
    if len(adapters) > 1:
        raise InferenceError("vllm_multiple_adapters", count=len(adapters))
    args: dict[str, Any] = {
        "model": model_path,
        "tokenizer": model_path,
        "trust_remote_code": model.trust_remote_code,
        "download_dir": model.cache_dir,
        "revision": model.model_revision,
        "dtype": model.infer_dtype,
        "max_model_len": model.vllm_maxlen,
        "gpu_memory_utilization": model.vllm_gpu_util,
        "enforce_eager": model.vllm_enforce_eager,
        "tensor_parallel_size": int(os.environ.get("VLLM_TENSOR_PARALLEL_SIZE", "1")),
        "disable_log_stats": True,
    }
    if adapters:
        args.update(enable_lora=True, max_lora_rank=model.vllm_max_lora_rank, max_loras=1)
    args.update(vllm_extra_arguments(model.vllm_config))
    if model.quantization_bit == 4:  # vLLM quantizes in flight with bitsandbytes' 4-bit only
        args.update(quantization="bitsandbytes")
    elif model.quantization_bit is not None:
        raise InferenceError("vllm_quantization_bit", bits=model.quantization_bit)
    return args


def vllm_extra_arguments(value: dict[str, Any] | str | None) -> dict[str, Any]:
    """`vllm_config`: more engine arguments, as a mapping or its JSON text (LLaMA-Factory accepts both)."""
    if not value:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as err:
            raise InferenceError("vllm_config_invalid", reason=str(err)) from None
    if not isinstance(value, dict):
        raise InferenceError("vllm_config_invalid", reason=f"a mapping is needed, not {type(value).__name__}")
    return dict(value)


class VLLMBackend(ChatBackend):
    """A vLLM `AsyncLLMEngine` driven from a private event loop; prompts rendered by the studio's template."""

    def __init__(self, engine: Any, loop: asyncio.AbstractEventLoop, tokenizer: Any, template: Any,
                 defaults: Sampling, model_id: str, lora_request: Any, context_length: int) -> None:
        self.engine, self.loop, self.tokenizer, self.template = engine, loop, tokenizer, template
        self.defaults, self.model_id, self.lora_request = defaults, model_id, lora_request
        self.context_length = context_length
        self._stop_ids = self.stop_token_ids()

    @classmethod
    def load(cls, config: Any, model_id: str) -> VLLMBackend:
        """Start the engine on the base model; the (single) adapter becomes a LoRARequest."""
        check_vllm_available()
        from vllm import AsyncEngineArgs, AsyncLLMEngine
        from vllm.lora.request import LoRARequest

        from engine.model.chat_template import load_template
        from engine.model.loader import load_tokenizer, resolve_model_folder

        path = resolve_model_folder(config.model)
        tokenizer = load_tokenizer(config.model)
        template = load_template(config.model.template, path, tokenizer, config.data.tool_format)
        adapters = [a.strip() for a in (config.model.adapter_name_or_path or "").split(",") if a.strip()]
        args = engine_arguments(config, path, adapters)
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, name="vllm-loop", daemon=True).start()

        async def start() -> Any:
            return AsyncLLMEngine.from_engine_args(AsyncEngineArgs(**args))

        engine = asyncio.run_coroutine_threadsafe(start(), loop).result()
        lora = LoRARequest("adapter", 1, adapters[0]) if adapters else None
        return cls(engine, loop, tokenizer, template, Sampling.from_config(config.generation), model_id, lora,
                   config.model.vllm_maxlen)

    def close(self) -> None:
        """Stop the engine and its loop."""
        shutdown = getattr(self.engine, "shutdown", None)
        if callable(shutdown):
            self.loop.call_soon_threadsafe(shutdown)
        self.loop.call_soon_threadsafe(self.loop.stop)

    def _media_messages(self, messages: Any, media: Any) -> Any:
        """Media through vLLM is not wired yet (its prompt updates were not verified on a GPU): say so."""
        raise InferenceError("vllm_media", kinds=", ".join(sorted(k for k, v in media.items() if v)))

    # ------------------------------------------------------------ generation

    def _params(self, sampling: Sampling) -> Any:
        from vllm import SamplingParams

        return SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature if sampling.do_sample else 0.0,
            top_p=sampling.top_p if sampling.do_sample else 1.0,
            top_k=sampling.top_k if sampling.do_sample and sampling.top_k > 0 else -1,
            repetition_penalty=sampling.repetition_penalty,
            max_tokens=sampling.max_new_tokens,
            stop=list(sampling.stop) or None,
            stop_token_ids=self._stop_ids,
            skip_special_tokens=sampling.skip_special_tokens,
            seed=sampling.seed,
        )

    def _results(self, prompt_ids: list[int], sampling: Sampling) -> AsyncIterator[Any]:
        from vllm import TokensPrompt

        return self.engine.generate(TokensPrompt(prompt_token_ids=prompt_ids), self._params(sampling),
                                    request_id=uuid.uuid4().hex, lora_request=self.lora_request)

    def _complete(self, prompt_ids: list[int], sampling: Sampling) -> list[Completion]:
        async def run() -> Any:
            final = None
            async for output in self._results(prompt_ids, sampling):
                final = output
            return final

        final = asyncio.run_coroutine_threadsafe(run(), self.loop).result()
        return [Completion(choice.text, len(prompt_ids), len(choice.token_ids), _finish(choice.finish_reason))
                for choice in final.outputs]

    def _stream(self, prompt_ids: list[int], sampling: Sampling) -> Iterator[str | Completion]:
        import queue

        pieces: queue.Queue[Any] = queue.Queue()

        async def run() -> None:
            try:
                async for output in self._results(prompt_ids, sampling):
                    pieces.put(output.outputs[0])
            except BaseException as exc:  # noqa: BLE001 - handed to the reading thread, which raises it
                pieces.put(exc)
            finally:
                pieces.put(_DONE)

        future = asyncio.run_coroutine_threadsafe(run(), self.loop)
        matcher = StopMatcher(())  # vLLM applies the stop strings itself
        last = None
        try:
            while (item := pieces.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                last = item
                shown = matcher.feed(item.text[len(matcher.text):])  # outputs are cumulative
                if shown:
                    yield shown
        finally:
            future.cancel()  # a consumer that stops reading (client gone) aborts the request
        count = len(last.token_ids) if last is not None else 0
        yield Completion(matcher.text, len(prompt_ids), count, _finish(last.finish_reason if last else None))


def _finish(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"
