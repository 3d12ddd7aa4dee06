"""The backend interface the API server and the terminal chat talk to, and what all backends share.

A backend turns a conversation (canonical roles user/assistant/function/observation, the system prompt and the
tool list beside it) into a reply. It renders the prompt with the studio's template renderer (the same one
training used), applies the sampling settings, and stops at the end-of-turn token, the template's stop words
and the caller's `stop` strings.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, NamedTuple

from engine.config.generation import GeneratingArguments
from engine.errors import StudioError

logger = logging.getLogger(__name__)


class InferenceError(StudioError):
    """A request or an inference setting that cannot be served as asked."""


class Completion(NamedTuple):
    """One generated reply: unpacks as `(text, prompt_tokens, completion_tokens, finish_reason)`."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (end of turn or a stop string) or "length" (max_new_tokens reached)


@dataclass(frozen=True)
class Sampling:
    """How one request is sampled: the config's generation settings with the request's values on top."""

    do_sample: bool = True
    temperature: float = 0.95
    top_p: float = 0.7
    top_k: int = 50
    max_new_tokens: int = 1024
    repetition_penalty: float = 1.0
    skip_special_tokens: bool = True
    stop: tuple[str, ...] = ()
    n: int = 1
    seed: int | None = None

    @classmethod
    def from_config(cls, generating: GeneratingArguments) -> Sampling:
        """The defaults a backend serves with, from the config's generation group."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: getattr(generating, k) for k in names if hasattr(generating, k)})

    def updated(self, **overrides: Any) -> Sampling:
        """These settings with the given (non-None) values replaced; temperature 0 means greedy decoding."""
        unknown = set(overrides) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"unknown sampling settings: {', '.join(sorted(unknown))}")
        values = {k: v for k, v in overrides.items() if v is not None}
        if isinstance(values.get("stop"), str):
            values["stop"] = (values["stop"],)
        if "stop" in values:
            values["stop"] = tuple(s for s in values["stop"] if s)
        if "temperature" in values and "do_sample" not in values:
            values["do_sample"] = values["temperature"] > 0
        result = replace(self, **values)
        if result.do_sample and result.temperature <= 0:
            result = replace(result, do_sample=False)
        return result

    @property
    def greedy(self) -> bool:
        """True when every choice is the same (the most likely token at each step)."""
        return not self.do_sample


def find_stop(text: str, stops: Sequence[str]) -> int:
    """Where the earliest of `stops` begins in `text`, or -1."""
    found = [index for index in (text.find(s) for s in stops if s) if index >= 0]
    return min(found, default=-1)


class StopMatcher:
    """Stream text through stop strings: emit what cannot be the start of one, cut at the first one found."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.text = ""
        self.emitted = 0
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Add generated text; returns what is safe to show now (sets `stopped` at a stop string)."""
        if self.stopped:
            return ""
        self.text += piece
        cut = find_stop(self.text, self.stops)
        if cut >= 0:
            self.stopped = True
            self.text = self.text[:cut]
            return self._take(cut)
        return self._take(len(self.text) - self._held_back())

    def flush(self) -> str:
        """The text held back at the end of generation (it turned out not to be a stop string)."""
        return self._take(len(self.text))

    def _held_back(self) -> int:
        # The longest tail of the text that is the beginning of some stop string.
        longest = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(self.text)), longest, -1):
                if self.text.endswith(stop[:size]):
                    longest = size
                    break
        return longest

    def _take(self, upto: int) -> str:
        upto = max(upto, self.emitted)
        piece = self.text[self.emitted : upto]
        self.emitted = upto
        return piece


Media = Mapping[str, Sequence[Any]]


class MediaPrompt(list):
    """Prompt ids (a list, so every length and slice works as before) that also carry the processor's tensors of
    the request's images, video or audio (`inputs`), for the backend to feed with the ids."""

    def __init__(self, ids: list[int], inputs: dict[str, Any]) -> None:
        super().__init__(ids)
        self.inputs = inputs


class ChatBackend(ABC):
    """A loaded model that answers conversations; subclasses implement `_complete` and `_stream`.

    `template` (engine.templates.Template), `tokenizer` and `defaults` (Sampling) are set by the subclass;
    `model_id` is the name clients use; `context_length` is the longest prompt plus reply in tokens.
    """

    template: Any
    tokenizer: Any
    defaults: Sampling
    model_id: str = "model"
    context_length: int | None = None
    enable_thinking: bool | None = None  # reasoning templates: the default when a request does not say
    plugin: Any = None  # the media plugin (engine.multimodal) when the model reads images, video or audio

    @property
    def modalities(self) -> frozenset[str]:
        """The media this model reads (`images`, `videos`, `audios`); empty for a text model."""
        return frozenset(self.plugin.kinds) if self.plugin is not None else frozenset()

    # ------------------------------------------------------------ public

    def generate(self, messages: Sequence[Mapping[str, Any]], system: str | None = None,
                 tools: Any = None, *, enable_thinking: bool | None = None, media: Media | None = None,
                 **sampling: Any) -> Completion:
        """One reply to the conversation; `sampling` overrides the config's settings (temperature, stop, seed, …).

        `media` (`{"images": [...], "videos": [...], "audios": [...]}`: paths, URLs, bytes or PIL images) fills the
        `<image>`/`<video>`/`<audio>` placeholders of the messages, in order."""
        return self.generate_choices(messages, system, tools, enable_thinking=enable_thinking, media=media,
                                     **{**sampling, "n": 1})[0]

    def generate_choices(self, messages: Sequence[Mapping[str, Any]], system: str | None = None,
                         tools: Any = None, *, enable_thinking: bool | None = None, media: Media | None = None,
                         **sampling: Any) -> list[Completion]:
        """`n` replies (sampling setting `n`, default 1) to the same conversation."""
        prompt_ids, settings = self.prepare(messages, system, tools, enable_thinking, sampling, media)
        return self._complete(prompt_ids, settings)

    def stream(self, messages: Sequence[Mapping[str, Any]], system: str | None = None,
               tools: Any = None, *, enable_thinking: bool | None = None, media: Media | None = None,
               **sampling: Any) -> Iterator[str | Completion]:
        """Text deltas of one reply as they are generated, then one `Completion` (full text, usage, finish)."""
        prompt_ids, settings = self.prepare(messages, system, tools, enable_thinking, {**sampling, "n": 1}, media)
        return self._stream(prompt_ids, settings)

    def extract_tool_calls(self, text: str) -> list[dict] | None:
        """The tool calls (`[{"name", "arguments"}]`) in a reply, or None for a plain answer."""
        return self.template.extract_tool_calls(text)

    def close(self) -> None:  # noqa: B027 - optional: backends without resources to free keep this
        """Free the model (the process may go on)."""

    # ------------------------------------------------------------ shared steps

    def prepare(self, messages: Sequence[Mapping[str, Any]], system: str | None, tools: Any,
                enable_thinking: bool | None, sampling: dict[str, Any],
                media: Media | None = None) -> tuple[list[int], Sampling]:
        """The prompt ids and the sampling settings of one request, with the reply fitted into the context; with
        media, the ids are a `MediaPrompt` that also carries the processor's tensors."""
        from engine.templates import render_prompt_ids

        settings = self.defaults.updated(**sampling)
        thinking = self.enable_thinking if enable_thinking is None else enable_thinking
        inputs, prefix = None, []
        if media and any(media.values()):
            messages, inputs, prefix = self._media_messages(messages, media)
        prompt_ids = render_prompt_ids(self.template, self.tokenizer, messages, system, tools, thinking)
        if inputs is not None:
            prompt_ids = MediaPrompt(prefix + prompt_ids, inputs)
        limit = self.context_length
        if limit is not None:
            if len(prompt_ids) >= limit:
                raise InferenceError("prompt_too_long", tokens=len(prompt_ids), limit=limit)
            room = limit - len(prompt_ids)
            if settings.max_new_tokens > room:
                settings = replace(settings, max_new_tokens=room)
        return prompt_ids, settings

    def _media_messages(self, messages: Sequence[Mapping[str, Any]],
                        media: Media) -> tuple[list[dict[str, Any]], dict[str, Any], list[int]]:
        """The messages with each media placeholder expanded into the model's tokens, the media tensors, and the
        token ids that go before the rendered prompt (PaliGemma's images)."""
        from engine.data.media import PLACEHOLDERS
        from engine.multimodal.plugins import prefix_ids

        given = {kind: list(items) for kind, items in media.items() if items}
        if not self.modalities:
            raise InferenceError("model_text_only", model=self.model_id, kinds=", ".join(sorted(given)))
        unread = sorted(set(given) - self.modalities)
        if unread:
            raise InferenceError("model_media_kind", model=self.model_id, kinds=", ".join(unread),
                                 reads=", ".join(sorted(self.modalities)))
        for kind, items in given.items():
            found = sum(str(m.get("content") or "").count(PLACEHOLDERS[kind]) for m in messages)
            if found != len(items):
                raise InferenceError("media_placeholder_count", kind=kind, placeholder=PLACEHOLDERS[kind],
                                     placeholders=found, items=len(items))
        loaded = self.plugin.load(given)
        counts = self.plugin.token_counts(loaded)
        expanded = self.plugin.expand([dict(m) for m in messages], counts, PLACEHOLDERS)
        return expanded, self.plugin.features([loaded]), prefix_ids(self.plugin, counts)

    def stop_token_ids(self) -> list[int]:
        """Token ids that end a reply: the tokenizer's eos and the template's stop words."""
        ids: list[int] = []
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        vocab = self.tokenizer.get_vocab()
        for word in self.template.stop_words:
            if word in vocab and vocab[word] not in ids:
                ids.append(vocab[word])
        return ids

    # ------------------------------------------------------------ per backend

    @abstractmethod
    def _complete(self, prompt_ids: list[int], sampling: Sampling) -> list[Completion]:
        """`sampling.n` completions of the prompt."""

    @abstractmethod
    def _stream(self, prompt_ids: list[int], sampling: Sampling) -> Iterator[str | Completion]:
        """Text deltas of one completion, then the `Completion`."""
