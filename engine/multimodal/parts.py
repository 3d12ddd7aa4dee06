"""The three parts of a media model (encoder, projector, language model): which to train, and which class loads it.

`freeze_vision_tower`, `freeze_multi_modal_projector` and `freeze_language_model` (LLaMA-Factory's keys, same
defaults: only the language model trains) decide which parts' weights stay fixed. Whatever the method, a frozen
part gets no adapter and no gradient: LoRA's `all` targets only the linear layers of the parts that train, and
full or freeze tuning switches the frozen parts off after the method is set up.
"""

from __future__ import annotations

from typing import Any

# model_type → (encoder module paths, projector module path), relative to the model's base (`model.`) as
# transformers 5 names them. Everything else except the output head is the language model.
PARTS: dict[str, tuple[tuple[str, ...], str]] = {
    "qwen2_vl": (("visual.patch_embed", "visual.blocks"), "visual.merger"),
    "qwen2_5_vl": (("visual.patch_embed", "visual.blocks"), "visual.merger"),
    "llava": (("vision_tower",), "multi_modal_projector"),
    "llava_next": (("vision_tower",), "multi_modal_projector"),
    "gemma3": (("vision_tower",), "multi_modal_projector"),
    "mistral3": (("vision_tower",), "multi_modal_projector"),
    "paligemma": (("vision_tower",), "multi_modal_projector"),
    "mllama": (("vision_model",), "multi_modal_projector"),
    "internvl": (("vision_tower",), "multi_modal_projector"),
    "glm4v": (("visual.patch_embed", "visual.blocks"), "visual.merger"),
    "glm4v_moe": (("visual.patch_embed", "visual.blocks"), "visual.merger"),
    "glm_ocr": (("visual.patch_embed", "visual.blocks"), "visual.merger"),
    # Qwen3-VL's deepstack mergers feed encoder layers into the language model; LLaMA-Factory counts them as encoder.
    "qwen3_vl": (("visual.pos_embed", "visual.patch_embed", "visual.blocks", "visual.deepstack_merger_list"),
                 "visual.merger"),
    "qwen3_vl_moe": (("visual.pos_embed", "visual.patch_embed", "visual.blocks", "visual.deepstack_merger_list"),
                     "visual.merger"),
    "qwen2_audio": (("audio_tower",), "multi_modal_projector"),
}


def is_media_config(config: Any) -> bool:
    """Whether a transformers config is a model that reads images, video or audio besides text."""
    return config is not None and any(getattr(config, name, None) is not None
                                      for name in ("vision_config", "audio_config"))


def media_model_class(config: Any) -> Any:
    """The Auto class that loads this media model with its language-model head: transformers' multimodal LM class,
    which maps every image-text-to-text model to the same class and also the models that hear (Qwen2-Audio)."""
    from transformers import AutoModelForMultimodalLM

    return AutoModelForMultimodalLM


def _within(name: str, paths: tuple[str, ...]) -> bool:
    return any(name == path or name.startswith(path + ".") or f".{path}." in f".{name}." for path in paths)


def frozen_paths(model: Any, finetuning_args: Any) -> tuple[str, ...]:
    """Module paths whose weights stay fixed for this run (empty for a text model)."""
    config = getattr(model, "config", None)
    if config is None or not is_media_config(config):
        return ()
    encoder, projector = PARTS.get(getattr(config, "model_type", ""), (("visual", "vision_tower", "audio_tower"),
                                                                       "multi_modal_projector"))
    frozen: list[str] = []
    if finetuning_args.freeze_vision_tower:
        frozen += encoder
    if finetuning_args.freeze_multi_modal_projector:
        frozen.append(projector)
    if finetuning_args.freeze_language_model:
        frozen += ["language_model", "lm_head"]
    return tuple(frozen)


def is_frozen(name: str, paths: tuple[str, ...]) -> bool:
    """Whether the module or parameter `name` lies in one of the frozen parts."""
    return bool(paths) and _within(name, paths)


def freeze_parts(model: Any, finetuning_args: Any) -> int:
    """Switch off the gradients of the frozen parts; returns how many parameters that fixed."""
    paths = frozen_paths(model, finetuning_args)
    fixed = 0
    for name, param in model.named_parameters():
        if param.requires_grad and is_frozen(name, paths):
            param.requires_grad_(False)
            fixed += param.numel()
    return fixed
