"""Write a merged Llama/Mistral/Qwen-family model as one GGUF file (llama.cpp, Ollama, LM Studio).

Tensors get llama.cpp's names (`token_embd`, `blk.N.attn_q`, ..., `output`). The `llama` architecture applies
RoPE to interleaved pairs of dimensions while transformers rotates halves, so the q and k projections of
Llama and Mistral are permuted row-wise (`permute_rotary`); llama.cpp's `qwen2`/`qwen3` use the halves layout
and take the weights unchanged. Types: `f32`, `f16`, `bf16`, and the block quantizations the `gguf` package can
compute (`q8_0`, `q5_1`, `q5_0`, `q4_1`, `q4_0`); norms and biases stay float32, and a matrix whose rows are not
a multiple of the block size falls back to f16.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from engine.errors import ModelError

logger = logging.getLogger(__name__)

# transformers architecture → (GGUF architecture, q/k rows permuted to llama.cpp's interleaved RoPE layout)
ARCHITECTURES = {
    "LlamaForCausalLM": ("llama", True),
    "MistralForCausalLM": ("llama", True),
    "Qwen2ForCausalLM": ("qwen2", False),
    "Qwen3ForCausalLM": ("qwen3", False),
}
_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)$")
_LAYER_NAMES = {
    "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}
_TOP_NAMES = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}
# Block quantizations: token_embd and output keep 8 bits under the 4/5-bit types, as llama.cpp's tools do.
_QUANTIZED = ("q8_0", "q5_1", "q5_0", "q4_1", "q4_0")


def gguf_file_name(outtype: str) -> str:
    """The GGUF file an export writes for `outtype`."""
    return f"model-{outtype}.gguf"


def gguf_architecture(architectures: list[str] | None) -> tuple[str, bool]:
    """(GGUF architecture, permute q/k) for a transformers config's `architectures`, or ModelError."""
    for name in architectures or []:
        if name in ARCHITECTURES:
            return ARCHITECTURES[name]
    raise ModelError("export_gguf_architecture_unsupported", arch=", ".join(architectures or ["?"]),
                     supported=", ".join(ARCHITECTURES))


def permute_rotary(weight: Any, n_head: int) -> Any:
    """Reorder each head's rows from rotate-half pairs (i, i + d/2) to interleaved pairs (2i, 2i + 1)."""
    rows = weight.shape[0]
    return weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def gguf_tensor_name(hf_name: str) -> str:
    """llama.cpp's name for a transformers parameter name (ModelError for one it has no place for)."""
    stem, _, suffix = hf_name.rpartition(".")
    if stem in _TOP_NAMES:
        return f"{_TOP_NAMES[stem]}.{suffix}"
    match = _LAYER.match(stem)
    if match and match.group(2) in _LAYER_NAMES:
        return f"blk.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}.{suffix}"
    raise ModelError("export_gguf_tensor_unknown", name=hf_name)


def llama3_rope_factors(params: dict, head_dim: int) -> list[float]:
    """The per-frequency factors (`rope_freqs`) llama.cpp applies for Llama 3.1-style RoPE scaling."""
    base = params.get("rope_theta", 10000.0)
    factor = params.get("factor", 8.0)
    low, high = params.get("low_freq_factor", 1.0), params.get("high_freq_factor", 4.0)
    original = params.get("original_max_position_embeddings", 8192)
    factors = []
    for i in range(0, head_dim, 2):
        wavelen = 2 * math.pi * base ** (i / head_dim)
        if wavelen < original / high:
            factors.append(1.0)
        elif wavelen > original / low:
            factors.append(float(factor))
        else:
            smooth = (original / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return factors


def _tensor_type(gguf: Any, name: str, array: Any, outtype: str) -> Any:
    types = gguf.GGMLQuantizationType
    if array.ndim == 1 or outtype == "f32":
        return types.F32
    if outtype in ("f16", "bf16"):
        return types.F16 if outtype == "f16" else types.BF16
    qtype = types.Q8_0 if name.startswith(("token_embd.", "output.")) else getattr(types, outtype.upper())
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    if array.shape[-1] % block:
        logger.info("%s: rows of %d are not a multiple of %d; kept as f16.", name, array.shape[-1], block)
        return types.F16
    return qtype


def _add_tensor(writer: Any, gguf: Any, name: str, array: Any, outtype: str) -> None:
    import numpy as np

    qtype = _tensor_type(gguf, name, array, outtype)
    types = gguf.GGMLQuantizationType
    if qtype in (types.F32, types.F16):
        writer.add_tensor(name, array.astype(np.float32 if qtype == types.F32 else np.float16))
    else:  # bf16 and block types are bytes; the writer derives the shape from raw_dtype
        writer.add_tensor(name, gguf.quants.quantize(array.astype(np.float32), qtype), raw_dtype=qtype)


def gguf_tensors(model: Any, permute: bool) -> Iterator[tuple[str, Any]]:
    """(GGUF name, float32 numpy array) for every weight, q/k permuted when the architecture needs it."""
    config = model.config
    tied = bool(getattr(config, "tie_word_embeddings", False))
    heads, kv_heads = config.num_attention_heads, getattr(config, "num_key_value_heads", None) or \
        config.num_attention_heads
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name.startswith("lm_head."):
            continue  # llama.cpp reuses token_embd when there is no output tensor
        name = gguf_tensor_name(hf_name)
        array = tensor.detach().to("cpu").float().numpy()
        if permute and ".attn_q." in name:
            array = permute_rotary(array, heads)
        elif permute and ".attn_k." in name:
            array = permute_rotary(array, kv_heads)
        yield name, array


def _add_hparams(writer: Any, gguf: Any, config: Any, name: str, outtype: str) -> list[tuple[str, Any]]:
    """Model hyper-parameters; returns extra tensors they need (Llama 3 RoPE factors)."""
    import numpy as np

    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    params = dict(getattr(config, "rope_parameters", None) or {})
    rotary = int(head_dim * params.get("partial_rotary_factor", 1.0))
    writer.add_type("model")
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(rotary)
    writer.add_rope_freq_base(float(params.get("rope_theta", getattr(config, "rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(getattr(gguf.LlamaFileType, "ALL_F32" if outtype == "f32" else f"MOSTLY_{outtype.upper()}"))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    kind = params.get("rope_type", "default")
    if kind == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(params["factor"]))
    elif kind == "yarn":
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(float(params["factor"]))
        writer.add_rope_scaling_orig_ctx_len(int(params.get("original_max_position_embeddings",
                                                            config.max_position_embeddings)))
    elif kind == "llama3":
        return [("rope_freqs.weight", np.asarray(llama3_rope_factors(params, rotary), dtype=np.float32))]
    elif kind != "default":
        logger.warning("RoPE type %r has no GGUF equivalent; the GGUF file uses plain RoPE.", kind)
    return []


def import_gguf() -> Any:
    """The `gguf` package, or a ModelError saying how to install it."""
    try:
        import gguf
    except ImportError:
        raise ModelError("export_gguf_not_installed") from None
    return gguf


def write_gguf(model: Any, tokenizer: Any, template: Any, path: Path, outtype: str, *, name: str = "model",
               progress: Callable[[int, int], None] | None = None) -> Path:
    """Write `model` (merged, transformers) with its tokenizer and chat template to the GGUF file `path`."""
    from engine.export.gguf_vocab import add_tokenizer

    gguf = import_gguf()
    arch, permute = gguf_architecture(getattr(model.config, "architectures", None) or [type(model).__name__])
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(path, arch, use_temp_file=True)
    try:
        extra = _add_hparams(writer, gguf, model.config, name, outtype)
        add_tokenizer(writer, tokenizer, template, model.config.vocab_size)
        total = len(model.state_dict()) + len(extra)
        for index, (tensor_name, array) in enumerate(itertools.chain(extra, gguf_tensors(model, permute))):
            _add_tensor(writer, gguf, tensor_name, array, outtype)  # spooled to a temp file, one at a time
            if progress is not None:
                progress(index + 1, total)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    logger.info("Wrote %s (%s, %.1f MB).", path, outtype, path.stat().st_size / 1e6)
    return path
