"""Media plugins: how one model family reads images and video.

A conversation carries LLaMA-Factory's placeholders (`<image>`, `<video>`, `<audio>`) where each media item goes.
A plugin (chosen by the template's `mm_plugin`) replaces each placeholder with the model's own tokens, as many as
the model will fill with that item's features, and turns the media of a batch into the tensors the model's forward
takes. The number of tokens depends only on an image's size after scaling, so tokenizing never runs the vision
preprocessing; the collator does, batch by batch.

Qwen2-VL (also Qwen2.5-VL): an image becomes `<|vision_start|>` + one `<|image_pad|>` per 2x2 block of 14-px
patches + `<|vision_end|>`; a video the same with `<|video_pad|>`, two frames per temporal patch. Its image
processor handles images; video frames go through the same processor and are paired into temporal patches here
(transformers' own video processor needs torchvision, which the CPU install does not have).
"""

from __future__ import annotations

from typing import Any

from engine.errors import DataError
from engine.multimodal.audio import Qwen2AudioPlugin
from engine.multimodal.gemma import Gemma3Plugin, PaliGemmaPlugin
from engine.multimodal.glm4v import Glm4vPlugin
from engine.multimodal.internvl import InternVLPlugin
from engine.multimodal.llava import LlavaNextPlugin, LlavaPlugin
from engine.multimodal.media_base import TOKEN_TYPES, MediaSettings, fit_pixels
from engine.multimodal.mllama import MllamaPlugin
from engine.multimodal.pixtral import PixtralPlugin
from engine.multimodal.processor_plugin import ProcessorPlugin


class Qwen2VLPlugin:
    """Qwen2-VL and Qwen2.5-VL: images and videos (see the module docstring)."""

    name = "qwen2_vl"
    kinds = ("images", "videos")

    def __init__(self, image_processor: Any, tokenizer: Any, settings: MediaSettings) -> None:
        self.processor = image_processor
        self.settings = settings
        self.merge = int(getattr(image_processor, "merge_size", 2))
        self.patch = int(getattr(image_processor, "patch_size", 14))
        self.temporal = int(getattr(image_processor, "temporal_patch_size", 2))
        self.tokens = {"images": "<|image_pad|>", "videos": "<|video_pad|>"}
        self.start, self.end = "<|vision_start|>", "<|vision_end|>"
        vocab = tokenizer.get_vocab()
        missing = [t for t in (*self.tokens.values(), self.start, self.end) if t not in vocab]
        if missing:
            raise DataError("media_tokens_missing", template=self.name, tokens=", ".join(missing))
        self.token_ids = {kind: vocab[token] for kind, token in self.tokens.items()}

    # ------------------------------------------------------------ loading

    def load(self, media: dict[str, list]) -> dict[str, list]:
        """Images (PIL, scaled to the pixel limits) and videos (lists of frames) of one example or request."""
        from engine.data.media import load_image, load_video

        s = self.settings
        images = [fit_pixels(load_image(ref), s.image_max_pixels, s.image_min_pixels) for ref in media.get("images") or []]
        videos = []
        for ref in media.get("videos") or []:
            frames = load_video(ref, fps=s.video_fps, maxlen=s.video_maxlen)
            frames = [fit_pixels(frame, s.video_max_pixels, s.video_min_pixels) for frame in frames]
            if len(frames) % self.temporal:  # whole temporal patches: repeat the last frame
                frames += [frames[-1]] * (self.temporal - len(frames) % self.temporal)
            videos.append(frames)
        return {"images": images, "videos": videos}

    # ------------------------------------------------------------ tokens

    def _grid(self, width: int, height: int) -> int:
        """Patches per frame after the processor's own resizing (rounded to whole merged blocks)."""
        return int(self.processor.get_number_of_image_patches(height, width, {}))

    def token_counts(self, loaded: dict[str, list]) -> dict[str, list[int]]:
        """How many model tokens each image and each video fills."""
        per_block = self.merge ** 2
        images = [self._grid(*image.size) // per_block for image in loaded["images"]]
        videos = [self._grid(*frames[0].size) * (len(frames) // self.temporal) // per_block
                  for frames in loaded["videos"]]
        return {"images": images, "videos": videos}

    def expand(self, messages: list[dict], counts: dict[str, list[int]], placeholders: dict[str, str]) -> list[dict]:
        """The messages with each placeholder replaced by the model's tokens for that item, in order."""
        queues = {kind: list(counts.get(kind) or []) for kind in self.kinds}
        out = []
        for message in messages:
            text = message.get("content") or ""
            for kind in self.kinds:
                placeholder = placeholders[kind]
                while placeholder in text and queues[kind]:
                    tokens = self.start + self.tokens[kind] * queues[kind].pop(0) + self.end
                    text = text.replace(placeholder, tokens, 1)
            out.append({**message, "content": text})
        return out

    def expected_tokens(self, counts: dict[str, list[int]]) -> dict[int, int]:
        """Token id → how many of it a fully kept example holds."""
        return {self.token_ids[kind]: sum(counts.get(kind) or []) for kind in self.kinds}

    # ------------------------------------------------------------ tensors

    def features(self, batch: list[dict[str, list]]) -> dict[str, Any]:
        """The processor tensors of a batch of loaded media (each entry one example's `load` result)."""
        import numpy as np
        import torch

        out: dict[str, Any] = {}
        images = [image for loaded in batch for image in loaded["images"]]
        if images:
            result = self.processor(images=images, return_tensors="np")
            out["pixel_values"] = torch.from_numpy(np.asarray(result["pixel_values"], dtype=np.float32))
            out["image_grid_thw"] = torch.from_numpy(np.asarray(result["image_grid_thw"], dtype=np.int64))
        videos = [frames for loaded in batch for frames in loaded["videos"]]
        if videos:
            pieces = [self._video_patches(frames) for frames in videos]
            out["pixel_values_videos"] = torch.from_numpy(np.concatenate([p for p, _ in pieces]).astype(np.float32))
            out["video_grid_thw"] = torch.tensor([grid for _, grid in pieces], dtype=torch.long)
        return out

    def _video_patches(self, frames: list) -> tuple[Any, list[int]]:
        """Qwen2-VL's video patches: each frame through the image processor (which repeats it over the temporal
        axis), then consecutive frames paired on that axis. Rows: (grid_t, merged-block order), each row laid out
        (channel, time, patch_h, patch_w), as transformers' video processor lays them out."""
        import numpy as np

        result = self.processor(images=frames, return_tensors="np")
        values = np.asarray(result["pixel_values"])
        _, grid_h, grid_w = (int(v) for v in result["image_grid_thw"][0])
        rows, t, p = grid_h * grid_w, self.temporal, self.patch
        channels = values.shape[-1] // (t * p * p)
        one = values.reshape(len(frames), rows, channels, t, p, p)[:, :, :, 0]  # (frames, rows, C, p, p)
        paired = one.reshape(len(frames) // t, t, rows, channels, p, p).transpose(0, 2, 3, 1, 4, 5)
        return paired.reshape(-1, channels * t * p * p), [len(frames) // t, grid_h, grid_w]

    def token_type_ids(self, input_ids: Any) -> Any:
        """transformers' `mm_token_type_ids`: 1 on image tokens, 2 on video tokens, 0 elsewhere."""
        types = (input_ids == self.token_ids["images"]).long() * TOKEN_TYPES["images"]
        return types + (input_ids == self.token_ids["videos"]).long() * TOKEN_TYPES["videos"]


class Qwen3VLPlugin(Qwen2VLPlugin):
    """Qwen3-VL: images as Qwen2-VL lays them out (its processor brings the 16-px patches). Its videos carry a
    timestamp before each temporal patch, which is not built: the template reads images only."""

    name = "qwen3_vl"
    kinds = ("images",)


PLUGINS = {"qwen2_vl": Qwen2VLPlugin, "qwen2_audio": Qwen2AudioPlugin}
# The image families read through their full transformers processor (engine.multimodal.processor_plugin).
PLUGINS.update({"qwen3_vl": Qwen3VLPlugin, "llava": LlavaPlugin, "llava_next": LlavaNextPlugin,
                "gemma3": Gemma3Plugin, "pixtral": PixtralPlugin,
                "paligemma": PaliGemmaPlugin, "mllama": MllamaPlugin,
                "intern_vl": InternVLPlugin, "glm4v": Glm4vPlugin})


def prefix_ids(plugin: Any, counts: dict[str, list]) -> list[int]:
    """Token ids a family puts before the rendered conversation, bos included (PaliGemma's image tokens)."""
    return plugin.prefix_ids(counts) if isinstance(plugin, ProcessorPlugin) else []


def token_inputs(plugin: Any, batch: dict[str, Any]) -> dict[str, Any]:
    """The inputs a media model takes that are worked out from the batch's token ids (`input_ids`, beside the media
    tensors, and `labels` in training): a family's own (`token_inputs`: Gemma 3's `token_type_ids`, Mllama's
    `cross_attention_mask`), else transformers' `mm_token_type_ids` where the plugin gives them."""
    if isinstance(plugin, ProcessorPlugin):
        return plugin.token_inputs(batch)
    types = plugin.token_type_ids(batch["input_ids"])
    return {} if types is None else {"mm_token_type_ids": types}


def load_media_processor(model_args: Any) -> Any:
    """The model's media processor (transformers' Auto classes): its image processor (the PIL backend when
    torchvision is missing), or the audio feature extractor of a model that only hears."""
    from transformers import AutoConfig, AutoFeatureExtractor, AutoImageProcessor

    from engine.model.load_errors import translated_errors
    from engine.model.loader import _hub_kwargs, resolve_model_folder

    path = resolve_model_folder(model_args)
    with translated_errors(model_args.model_name_or_path, model_args, path):
        config = AutoConfig.from_pretrained(path, **_hub_kwargs(model_args))
        hears_only = getattr(config, "audio_config", None) is not None and getattr(config, "vision_config", None) is None
        auto = AutoFeatureExtractor if hears_only else AutoImageProcessor
        return auto.from_pretrained(path, **_hub_kwargs(model_args))


def get_plugin(template: Any, tokenizer: Any,
               model_args: Any) -> Qwen2VLPlugin | Qwen2AudioPlugin | ProcessorPlugin | None:
    """The media plugin of `template` for this model, or None for a text-only template."""
    if not template.mm_plugin:
        return None
    plugin = PLUGINS[template.mm_plugin]
    settings = MediaSettings.from_model_args(model_args)
    if issubclass(plugin, ProcessorPlugin):
        processor = load_full_processor(model_args, tokenizer, plugin)
        return None if processor is None else plugin(processor, tokenizer, settings)
    return plugin(load_media_processor(model_args), tokenizer, settings)


def save_media_processor(template: Any, tokenizer: Any, model_args: Any, folder: Any) -> None:
    """Write the model's media processor beside an exported model: the image processor (or feature extractor), and
    for the families read through their full processor its own settings too (`processor_config.json`: patch size,
    tokens per image, ...), which the image processor alone does not carry. Nothing for a text-only checkpoint."""
    plugin = PLUGINS[template.mm_plugin]
    if issubclass(plugin, ProcessorPlugin):
        processor = load_full_processor(model_args, tokenizer, plugin)
        if processor is not None:
            plugin.save_processor(processor, folder)
        return
    load_media_processor(model_args).save_pretrained(folder)


def load_full_processor(model_args: Any, tokenizer: Any, plugin: type[ProcessorPlugin]) -> Any:
    """The model's processor (`plugin.load_processor`) around the run's tokenizer, or None for a checkpoint that reads
    text only (a media template also serves its family's text models, e.g. MedGemma's text-only Gemma 3)."""
    from transformers import AutoConfig

    from engine.model.load_errors import translated_errors
    from engine.model.loader import _hub_kwargs, resolve_model_folder
    from engine.multimodal.parts import is_media_config

    path = resolve_model_folder(model_args)
    hub = _hub_kwargs(model_args)
    with translated_errors(model_args.model_name_or_path, model_args, path):
        config = AutoConfig.from_pretrained(path, **hub)
        if not is_media_config(config):
            return None
        return plugin.load_processor(path, tokenizer, config, hub)
