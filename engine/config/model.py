"""Model, tokenizer, quantization and booster settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.config.fields import option

FLASH_ATTN_CHOICES = ["auto", "disabled", "sdpa", "fa2", "fa3"]
ROPE_SCALING_CHOICES = [None, "linear", "dynamic", "yarn", "llama3"]
QUANTIZATION_METHODS = ["bnb", "bitsandbytes", "gptq", "awq", "hqq", "eetq"]
INFER_DTYPES = ["auto", "float16", "bfloat16", "float32"]


@dataclass
class ModelArguments:
    """Which model to load and how."""

    model_name_or_path: str = option("demo", "Hub id or local folder of the base model; `demo` is the offline demo.")
    adapter_name_or_path: str | None = option(None, "Comma-separated LoRA adapter folders to load on the base model.")
    adapter_folder: str | None = option(None, "A folder of adapters to load; not supported by this engine (refused).")
    template: str | None = option(None, "Chat template name; empty means the model's recommended one.")
    cache_dir: str | None = option(None, "Where downloaded models are cached.")
    model_revision: str = option("main", "Branch, tag or commit of the model on the hub.")
    hf_hub_token: str | None = option(None, "Token for private Hugging Face models.", secret=True)
    ms_hub_token: str | None = option(None, "Token for private ModelScope models.", secret=True)
    om_hub_token: str | None = option(None, "Token for private OpenMind (Modelers) datasets.", secret=True)
    image_max_pixels: int = option(768 * 768, "Images are scaled down to at most this many pixels.", min=1)
    image_min_pixels: int = option(32 * 32, "Images are scaled up to at least this many pixels.", min=1)
    video_max_pixels: int = option(256 * 256, "Video frames are scaled down to at most this many pixels.", min=1)
    video_min_pixels: int = option(16 * 16, "Video frames are scaled up to at least this many pixels.", min=1)
    video_fps: float = option(2.0, "Frames sampled per second of video.", min=0.01, step=0.5)
    video_maxlen: int = option(128, "At most this many frames per video.", min=2, max=4096)
    audio_sampling_rate: int = option(16000, "Audio is resampled to this rate (Hz).", min=1000, max=192000)
    trust_remote_code: bool = option(False, "Run the model repository's own Python code (only for models you trust).")
    use_fast_tokenizer: bool = option(True, "Use the fast (Rust) tokenizer.")
    resize_vocab: bool = option(False, "Resize the embeddings to the tokenizer's vocabulary size.")
    split_special_tokens: bool = option(False, "Tokenize special tokens as plain text.")
    add_tokens: str | None = option(None, "Comma-separated plain tokens to add to the tokenizer.")
    add_special_tokens: str | None = option(None, "Comma-separated special tokens to add to the tokenizer.")
    new_special_tokens_config: str | None = option(
        None, "YAML file mapping new special tokens to descriptions (replaces add_special_tokens).")
    init_special_tokens: str = option("noise_init", "How new special tokens' embeddings start: near the mean "
                                      "(noise_init) or from their descriptions (desc_init, desc_init_w_noise).",
                                      choices=["noise_init", "desc_init", "desc_init_w_noise"])
    low_cpu_mem_usage: bool = option(True, "Load weights lazily to save memory.")
    rope_scaling: str | None = option(None, "RoPE scaling to extend the context.", choices=ROPE_SCALING_CHOICES)
    flash_attn: str = option("auto", "Attention implementation.", choices=FLASH_ATTN_CHOICES)
    shift_attn: bool = option(False, "Shifted sparse attention (LongLoRA); not supported by this engine (refused).")
    use_unsloth: bool = option(False, "Use Unsloth's fused kernels for LoRA training (GPU only).")
    use_unsloth_gc: bool = option(False, "Use Unsloth's gradient checkpointing (GPU only).")
    enable_liger_kernel: bool = option(False, "Use Liger's fused Triton kernels (GPU only).")
    disable_gradient_checkpointing: bool = option(False, "Never use gradient checkpointing.")
    use_reentrant_gc: bool = option(True, "Gradient checkpointing with the re-entrant implementation.")
    moe_aux_loss_coef: float | None = option(None, "Mixture-of-experts: weight of the router's load-balancing loss.",
                                             min=0.0)
    upcast_layernorm: bool = option(False, "Keep layer norms in float32.")
    upcast_lmhead_output: bool = option(False, "Compute the LM head's output in float32.")
    train_from_scratch: bool = option(False, "Randomly initialise the weights instead of loading them.")
    quantization_bit: int | None = option(None, "Load the base model quantized to this many bits (QLoRA).",
                                          choices=[None, 8, 4])
    quantization_method: str = option("bnb", "Quantization library.", choices=QUANTIZATION_METHODS)
    quantization_type: str = option("nf4", "4-bit data type.", choices=["nf4", "fp4"])
    double_quantization: bool = option(True, "Quantize the quantization constants too (4-bit).")
    quantization_device_map: str | None = option(None, "Device map for a quantized model (`auto` for inference).")
    infer_backend: str = option("huggingface", "Inference backend.", choices=["huggingface", "hf", "vllm"])
    infer_dtype: str = option("auto", "Data type of the weights at inference.", choices=INFER_DTYPES)
    use_cache: bool = option(True, "Use the key/value cache when generating.")
    offload_folder: str = option("offload", "Where weights are offloaded when memory runs out.")
    print_param_status: bool = option(False, "Print every parameter's dtype, device and trainability.")
    vllm_maxlen: int = option(4096, "vLLM: longest prompt + reply in tokens.", min=1)
    vllm_gpu_util: float = option(0.7, "vLLM: share of GPU memory to use.", min=0.0, max=1.0, exclusive_min=True)
    vllm_enforce_eager: bool = option(False, "vLLM: disable CUDA graphs.")
    vllm_config: dict[str, Any] | str | None = option(None, "vLLM: extra engine arguments (a mapping or its JSON "
                                                        "text), e.g. {\"max_num_seqs\": 64}.")
    vllm_max_lora_rank: int = option(32, "vLLM: largest LoRA rank to serve.", min=1)
    export_dir: str | None = option(None, "Folder to write the exported model into.")
    export_size: int = option(5, "Largest shard of the exported weights, in GB.", min=1, max=100)
    export_device: str = option("cpu", "Device used to merge adapters on export.", choices=["cpu", "auto"])
    export_quantization_bit: int | None = option(None, "Quantize the export (GPTQ) to this many bits.",
                                                 choices=[None, 8, 4, 3, 2])
    export_quantization_dataset: str | None = option(None, "Calibration data for GPTQ export.")
    export_quantization_nsamples: int = option(128, "Calibration samples for GPTQ.", min=1)
    export_quantization_maxlen: int = option(1024, "Longest calibration sample for GPTQ.", min=1)
    export_legacy_format: bool = option(False, "Save `.bin` weights instead of safetensors.")
    export_hub_model_id: str | None = option(None, "Hub repository to upload the export to.")
