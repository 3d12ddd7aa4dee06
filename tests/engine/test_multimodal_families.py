"""The vision-language families beyond Qwen2-VL, each on a tiny random instance of its real transformers architecture
(built here from the config classes, with the vision demo's tokenizer plus the family's tokens and the family's own
PIL image processor): the placeholder expansion matches what the model's processor expands, LoRA trains two steps on
mllm_demo, and the chat backend answers a question about an image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from engine.config import config_from_dict

DATA = Path(__file__).resolve().parents[2] / "data"
IMAGE = DATA / "mllm_demo_data" / "2.png"  # 112x80: not square, so tiled families see a real layout

_TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "max_position_embeddings": 4096}
_CLIP = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
         "image_size": 28, "patch_size": 14, "projection_dim": 32}
_MEAN, _STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


def _tokenizer(demo: Path, tokens: list[str], **named: str) -> Any:
    """The vision demo's tokenizer with the family's media tokens added (`named`: e.g. image_token=…, which the
    family's processor reads from the tokenizer)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(demo, **({"extra_special_tokens": named} if named else {}))
    tokenizer.add_tokens(tokens, special_tokens=True)
    return tokenizer


def _llava(demo: Path, out: Path) -> str:
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    tokenizer = _tokenizer(demo, ["<image>"])
    config = LlavaConfig(vision_config={"model_type": "clip_vision_model", **_CLIP},
                         text_config={"model_type": "llama", "vocab_size": len(tokenizer), **_TEXT},
                         image_token_id=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_layer=-1)
    LlavaForConditionalGeneration(config).save_pretrained(out)
    images = LlavaImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28},
                                    image_mean=_MEAN, image_std=_STD)
    LlavaProcessor(images, tokenizer, patch_size=14, vision_feature_select_strategy="default",
                   num_additional_image_tokens=1).save_pretrained(out)
    return "llava"


def _llava_next(demo: Path, out: Path) -> str:
    from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextProcessor
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    tokenizer = _tokenizer(demo, ["<image>"])
    grid = [[28, 28], [28, 56], [56, 28], [56, 56]]
    config = LlavaNextConfig(vision_config={"model_type": "clip_vision_model", **_CLIP},
                             text_config={"model_type": "llama", "vocab_size": len(tokenizer), **_TEXT},
                             image_token_id=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
                             image_grid_pinpoints=grid)
    LlavaNextForConditionalGeneration(config).save_pretrained(out)
    images = LlavaNextImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28},
                                        image_grid_pinpoints=grid, image_mean=_MEAN, image_std=_STD)
    LlavaNextProcessor(images, tokenizer, patch_size=14, vision_feature_select_strategy="default",
                       num_additional_image_tokens=1).save_pretrained(out)
    return "llava_next"


def _gemma3(demo: Path, out: Path) -> str:
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    boi, soft, eoi = "<start_of_image>", "<image_soft_token>", "<end_of_image>"
    tokenizer = _tokenizer(demo, [], image_token=soft, boi_token=boi, eoi_token=eoi)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in (boi, soft, eoi)}
    config = Gemma3Config(
        text_config={"vocab_size": len(tokenizer), **_TEXT, "head_dim": 16, "query_pre_attn_scalar": 16,
                     "sliding_window": 64, "pad_token_id": tokenizer.pad_token_id, "bos_token_id": None},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 28, "patch_size": 7},
        mm_tokens_per_image=4, boi_token_index=ids[boi], eoi_token_index=ids[eoi], image_token_index=ids[soft])
    Gemma3ForConditionalGeneration(config).save_pretrained(out)
    images = Gemma3ImageProcessorPil(size={"height": 28, "width": 28})
    Gemma3Processor(images, tokenizer, image_seq_length=4).save_pretrained(out)
    return "gemma3"


def _qwen3_vl(demo: Path, out: Path) -> str:
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tokenizer = _tokenizer(demo, [])  # the demo already has Qwen's vision tokens
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>",
                                                          "<|vision_end|>")}
    config = Qwen3VLConfig(
        text_config={"vocab_size": len(tokenizer), **_TEXT, "head_dim": 16,
                     "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3],
                                         "mrope_interleaved": True}},
        vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "patch_size": 16,
                       "out_hidden_size": 64, "num_position_embeddings": 64, "deepstack_visual_indexes": [1]},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    Qwen3VLForConditionalGeneration(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    Qwen2VLImageProcessorPil(min_pixels=32 * 32, max_pixels=128 * 128, patch_size=16, merge_size=2,
                             temporal_patch_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(out)
    return "qwen3_vl_nothink"


def _pixtral(demo: Path, out: Path) -> str:
    """Pixtral-12B's layout: LLaVA classes around a Pixtral encoder (2D rotary patches at the image's own shape)."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration
    from transformers.models.pixtral.image_processing_pil_pixtral import PixtralImageProcessorPil

    tokenizer = _tokenizer(demo, ["[IMG]", "[IMG_BREAK]", "[IMG_END]"])
    config = LlavaConfig(vision_config={"model_type": "pixtral", "hidden_size": 32, "intermediate_size": 64,
                                        "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 64,
                                        "patch_size": 16, "head_dim": 16},
                         text_config={"model_type": "mistral", "vocab_size": len(tokenizer), **_TEXT},
                         image_token_id=tokenizer.convert_tokens_to_ids("[IMG]"), vision_feature_layer=-1,
                         vision_feature_select_strategy="full", projector_hidden_act="gelu")
    LlavaForConditionalGeneration(config).save_pretrained(out)
    images = PixtralImageProcessorPil(size={"longest_edge": 64}, patch_size={"height": 16, "width": 16})
    tokenizer.save_pretrained(out)
    images.save_pretrained(out)  # (transformers' PixtralProcessor itself needs torchvision)
    return "pixtral"


def _paligemma(demo: Path, out: Path) -> str:
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    tokenizer = _tokenizer(demo, ["<image>", "<bos>"])
    tokenizer.bos_token = "<bos>"  # PaliGemma's processor writes bos after the images
    config = PaliGemmaConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 28, "patch_size": 14, "projection_dim": 64},
        text_config={"model_type": "gemma", "vocab_size": len(tokenizer), **_TEXT, "head_dim": 16},
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), projection_dim=64)
    PaliGemmaForConditionalGeneration(config).save_pretrained(out)
    images = SiglipImageProcessorPil(size={"height": 28, "width": 28})
    images.image_seq_length = 4  # (28 / 14)² patches
    PaliGemmaProcessor(images, tokenizer).save_pretrained(out)
    return "paligemma"


def _mllama(demo: Path, out: Path) -> str:
    """Llama 3.2 Vision's layout: a tiled vision encoder whose features the language model reads by cross-attention."""
    from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaProcessor
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    tokenizer = _tokenizer(demo, ["<|image|>", "<|python_tag|>", "<|begin_of_text|>", "<|start_header_id|>",
                                  "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>"])  # Llama 3's control tokens
    tokenizer.bos_token = "<|begin_of_text|>"
    config = MllamaConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_global_layers": 1,
                       "attention_heads": 2, "image_size": 28, "patch_size": 14, "max_num_tiles": 2,
                       "intermediate_layers_indices": [0], "vision_output_dim": 64,
                       "supported_aspect_ratios": [[1, 1], [1, 2], [2, 1]]},
        text_config={"vocab_size": len(tokenizer), **_TEXT, "cross_attention_layers": [1],
                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        image_token_index=tokenizer.convert_tokens_to_ids("<|image|>"))
    MllamaForConditionalGeneration(config).save_pretrained(out)
    images = MllamaImageProcessorPil(size={"height": 28, "width": 28}, max_image_tiles=2)
    MllamaProcessor(images, tokenizer).save_pretrained(out)
    return "mllama"


def _internvl(demo: Path, out: Path) -> str:
    """InternVL3-hf's layout: an InternViT encoder, pixel-shuffled features, a Qwen2 language model."""
    from transformers import InternVLConfig, InternVLForConditionalGeneration
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    named = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
             "video_token": "<video>"}
    tokenizer = _tokenizer(demo, [], **named)
    config = InternVLConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": [28, 28], "patch_size": [14, 14]},
        text_config={"model_type": "qwen2", "vocab_size": len(tokenizer), **_TEXT},
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"), image_seq_length=1)
    InternVLForConditionalGeneration(config).save_pretrained(out)
    images = GotOcr2ImageProcessorPil(size={"height": 28, "width": 28}, crop_to_patches=True, min_patches=1,
                                      max_patches=4)
    tokenizer.save_pretrained(out)
    images.save_pretrained(out)  # (transformers' InternVLProcessor itself needs torchvision)
    (out / "processor_config.json").write_text('{"processor_class": "InternVLProcessor", "image_seq_length": 1}')
    return "intern_vl"


def _glm4v(demo: Path, out: Path, *, ocr: bool = False) -> str:
    """GLM-4.1V's layout (GLM-OCR's with `ocr`): Qwen2-VL-style patches (with its own resize rule) into a GLM-4
    language model."""
    from transformers import Glm4vConfig, Glm4vForConditionalGeneration, GlmOcrConfig, GlmOcrForConditionalGeneration
    from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil

    config_class, model_class = (GlmOcrConfig, GlmOcrForConditionalGeneration) if ocr else (
        Glm4vConfig, Glm4vForConditionalGeneration)

    tokens = ["<|begin_of_image|>", "<|image|>", "<|end_of_image|>", "<|begin_of_video|>", "<|video|>",
              "<|end_of_video|>", "[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"]
    tokenizer = _tokenizer(demo, tokens)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in tokens}
    config = config_class(
        text_config={"vocab_size": len(tokenizer), **_TEXT,
                     "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3],
                                         "partial_rotary_factor": 1.0}},
        vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "image_size": 28,
                       "out_hidden_size": 64},
        image_token_id=ids["<|image|>"], video_token_id=ids["<|video|>"],
        image_start_token_id=ids["<|begin_of_image|>"], image_end_token_id=ids["<|end_of_image|>"],
        video_start_token_id=ids["<|begin_of_video|>"], video_end_token_id=ids["<|end_of_video|>"])
    model_class(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    Glm4vImageProcessorPil(size={"shortest_edge": 56 * 56, "longest_edge": 112 * 112}).save_pretrained(out)
    return "glm_ocr" if ocr else "glm4v"


BUILDERS = {"llava": _llava, "llava_next": _llava_next, "gemma3": _gemma3, "qwen3_vl": _qwen3_vl, "pixtral": _pixtral,
            "paligemma": _paligemma, "mllama": _mllama, "internvl": _internvl,
            "glm4v": _glm4v, "glm_ocr": lambda demo, out: _glm4v(demo, out, ocr=True)}
# template → (image tokens, all tokens) → the inputs worked out from the tokens, as counts of their nonzero entries
TOKEN_INPUTS = {
    "llava": lambda n, total: {}, "llava_next": lambda n, total: {}, "pixtral": lambda n, total: {},
    "gemma3": lambda n, total: {"token_type_ids": n},  # Gemma 3's image tokens attend to each other both ways
    "paligemma": lambda n, total: {"token_type_ids": total - n},  # 0 on its images (in front), 1 on the text
    "qwen3_vl_nothink": lambda n, total: {"mm_token_type_ids": n},
    "mllama": lambda n, total: {},  # (its cross-attention mask needs the tiles: see the features check below)
    "intern_vl": lambda n, total: {}, "glm4v": lambda n, total: {"mm_token_type_ids": n},
    "glm_ocr": lambda n, total: {"mm_token_type_ids": n},
}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def family(request: pytest.FixtureRequest, vision_model_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(model folder, template) of one family's tiny random model."""
    import torch

    out = tmp_path_factory.mktemp("families") / request.param
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        template = BUILDERS[request.param](vision_model_dir, out)
    return out, template


def _plugin(folder: Path, template: str) -> tuple[Any, Any]:
    from engine.model.loader import load_tokenizer
    from engine.multimodal.plugins import get_plugin
    from engine.templates import get_template

    config = config_from_dict({"model_name_or_path": str(folder), "template": template})
    tokenizer = load_tokenizer(config.model)
    return get_plugin(get_template(template), tokenizer, config.model), tokenizer


def test_expansion_matches_the_models_processor(family: tuple[Path, str]):
    """What the plugin writes for an image is what transformers' own processor expands `<image>` to."""
    import numpy as np
    import torch
    from transformers import AutoProcessor

    from engine.data.media import PLACEHOLDERS
    from engine.multimodal.plugins import prefix_ids, token_inputs

    folder, template = family
    plugin, tokenizer = _plugin(folder, template)
    image = Image.open(IMAGE).convert("RGB")
    loaded = plugin.load({"images": [image]})
    counts = plugin.token_counts(loaded)
    text = plugin.expand([{"role": "user", "content": "<image>What is it?"}], counts, PLACEHOLDERS)[0]["content"]
    ids = prefix_ids(plugin, counts) + tokenizer(text, add_special_tokens=False)["input_ids"]
    (token_id, expected), = plugin.expected_tokens(counts).items()
    assert expected > 0 and ids.count(token_id) == expected
    extra = token_inputs(plugin, {"input_ids": torch.tensor([ids])})
    assert {key: int(value.bool().sum()) for key, value in extra.items()} == TOKEN_INPUTS[template](expected, len(ids))
    if template == "pixtral":  # transformers' PixtralProcessor needs torchvision: the image processor's own sizes
        sizes = plugin.image_processor(images=loaded["images"], patch_size={"height": 16, "width": 16},
                                       return_tensors="np")["image_sizes"]
        assert counts["images"] == [(int(h) // 16, int(w) // 16) for h, w in sizes]
        assert text.startswith("[IMG]" * counts["images"][0][1] + "[IMG_BREAK]") and "[IMG_END]What" in text
    if template == "intern_vl":  # (no processor without torchvision) the image processor's own tiles
        tiles = plugin.image_processor(images=loaded["images"], return_tensors="np")["num_patches"]
        assert counts["images"] == [int(n) for n in tiles] and text.startswith("<img>") and "</img>What" in text
    if template in ("glm4v", "glm_ocr"):  # (no processor without torchvision) the image processor's own grid, 2x2 blocks
        grid = plugin.image_processor(images=loaded["images"], return_tensors="np")["image_grid_thw"]
        assert counts["images"] == [int(t * h * w) // 4 for t, h, w in grid]
    if template in ("pixtral", "qwen3_vl_nothink", "intern_vl", "glm4v", "glm_ocr"):  # their processors want torchvision (Qwen3-VL's
        return  # for video; its image side is Qwen2-VL's)
    processor = AutoProcessor.from_pretrained(folder)
    marker = processor.boi_token if template == "gemma3" else processor.image_token  # what its processor expands
    own = processor(text=[marker + "What is it?"], images=[loaded["images"]], return_tensors="np")
    if template == "paligemma":  # images, bos, the prompt, a newline (bos and newline are the template's)
        ids = ids[:expected] + [tokenizer.bos_token_id] + tokenizer(text + "\n", add_special_tokens=False)["input_ids"]
    assert ids == [i for i in own["input_ids"][0].tolist() if template == "paligemma" or i != tokenizer.bos_token_id]
    features = plugin.features([loaded])
    assert np.allclose(features["pixel_values"].numpy(), own["pixel_values"])
    if "image_sizes" in own:
        assert features["image_sizes"].tolist() == own["image_sizes"].tolist()
    if template == "mllama":  # which positions see which tiles, worked out from the processor's own ids
        mask = token_inputs(plugin, {**features, "input_ids": torch.tensor(own["input_ids"])})["cross_attention_mask"]
        assert mask.numpy().tolist() == own["cross_attention_mask"].tolist() and mask.sum() > 0


def _ask(backend: Any) -> Any:
    return backend.generate([{"role": "user", "content": "<image>What shape is this?"}],
                            media={"images": [str(IMAGE)]}, max_new_tokens=3, temperature=0)


def test_lora_trains_chats_and_exports_with_an_image(family: tuple[Path, str], tmp_path: Path):
    from safetensors import safe_open

    from engine.export.run import run_export
    from engine.inference.engine import load_backend
    from engine.train.run import run_training

    folder, template = family
    out = tmp_path / "run"
    config = config_from_dict({
        "model_name_or_path": str(folder), "template": template, "stage": "sft", "finetuning_type": "lora",
        "dataset": "mllm_demo", "dataset_dir": str(DATA), "output_dir": str(out), "cutoff_len": 1024,
        "per_device_train_batch_size": 2, "max_steps": 2, "learning_rate": 1e-3, "logging_steps": 1,
        "report_to": "none", "save_strategy": "no", "seed": 0,
    })
    assert run_training(config) == 0, (out / "running_log.txt").read_text(encoding="utf-8")[-3000:]
    with safe_open(out / "adapter_model.safetensors", "pt") as adapter:  # the encoder and projector stay fixed
        names = list(adapter.keys())
    assert names and all(".language_model." in name for name in names)
    tuned = {"model_name_or_path": str(folder), "template": template, "adapter_name_or_path": str(out),
             "finetuning_type": "lora"}
    backend = load_backend(config_from_dict(tuned))
    assert backend.modalities == frozenset({"images"})
    reply = _ask(backend)
    plugin, _ = _plugin(folder, template)
    image_tokens = sum(plugin.expected_tokens(plugin.token_counts(plugin.load({"images": [str(IMAGE)]}))).values())
    assert reply.prompt_tokens > image_tokens > 0

    merged = tmp_path / "merged"  # the export carries the processor's settings, so it reads images on its own
    assert run_export(config_from_dict({**tuned, "export_dir": str(merged)})) == 0
    again = _ask(load_backend(config_from_dict({"model_name_or_path": str(merged), "template": template,
                                                "finetuning_type": "full"})))
    assert again.prompt_tokens == reply.prompt_tokens and again.text == reply.text


def test_paligemma_trains_with_sft_only(vision_model_dir: Path, tmp_path: Path):
    """Its images go before bos, which only the SFT rows lay out: DPO is refused before launch, naming sft."""
    from engine.errors import ConfigError
    from engine.validation import validate_config

    folder = tmp_path / "paligemma"
    _paligemma(vision_model_dir, folder)
    base = {"model_name_or_path": str(folder), "template": "paligemma", "dataset_dir": str(DATA),
            "output_dir": str(tmp_path / "out")}
    with pytest.raises(ConfigError, match="sft") as info:
        validate_config(config_from_dict({**base, "stage": "dpo", "dataset": "dpo_en_demo"}))
    assert info.value.key == "media_stage_sft_only"
    validate_config(config_from_dict({**base, "dataset": "mllm_demo"}))


def test_dpo_steps_with_images(family: tuple[Path, str], tmp_path: Path):
    """Two DPO steps on image pairs: the images reach both halves of each batch, with the family's own inputs."""
    from engine.train.run import run_training
    from tests.engine.test_multimodal import _colour_pairs

    folder, template = family
    out = tmp_path / "dpo"
    config = config_from_dict({
        "model_name_or_path": str(folder), "template": template, "stage": "dpo", "finetuning_type": "lora",
        "dataset": "colour_pairs", "dataset_dir": str(_colour_pairs(tmp_path / "data")), "output_dir": str(out),
        "cutoff_len": 1024, "per_device_train_batch_size": 2, "max_steps": 2, "learning_rate": 1e-3,
        "logging_steps": 1, "report_to": "none", "save_strategy": "no", "seed": 0,
    })
    if template == "paligemma":  # its image tokens go in front of the whole prompt: DPO is refused before launch
        from engine.errors import ConfigError
        from engine.validation import validate_config

        with pytest.raises(ConfigError, match="sft"):
            validate_config(config)
        return
    assert run_training(config) == 0, (out / "running_log.txt").read_text(encoding="utf-8")[-3000:]
    log = (out / "trainer_log.jsonl").read_text(encoding="utf-8")
    assert "rewards/margins" in log and (out / "adapter_model.safetensors").is_file()
