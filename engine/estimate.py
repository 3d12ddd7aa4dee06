"""How much memory a training run needs per device, estimated before launch, and measured on request.

`estimate_memory(config, devices=N, on_gpu=…)` reads the model's shape (its local `config.json`, no torch; for a
hub id not on disk, the registry's size with typical shape ratios, marked approximate) and splits the memory of
one device into weights, gradients, optimizer states, activations and a fixed runtime share, for the finetuning
method (the METHODS records say which train adapters and take a quantized base), quantization, precision,
gradient checkpointing, optimizer and sharding (DeepSpeed ZeRO 0–3 with offload, FSDP; DDP replicates).

The rules, per device with N devices, P parameters of which T are trained, b sequences of cutoff_len L:
- weights: frozen weights in the load dtype (16-bit on a GPU with bf16/fp16, else 32-bit), trained ones in 32-bit
  (16-bit with pure_bf16); a 4-bit base keeps its decoder matrices at 0.5 byte plus quantization constants (8-bit:
  1 byte), embeddings, norms and head unquantized. ZeRO-3 / FSDP full shard divide by N (plus one layer gathered).
- gradients: T in the trained weights' dtype; ZeRO-2/3 and FSDP divide by N; layer-wise GaLore/APOLLO and BAdam
  hold one layer's (or block's) gradients at a time.
- optimizer: bytes per trained parameter by optimizer (AdamW 8, 8-bit Adam 2, Adafactor ≈0, SGD 0, Adam-mini 4,
  Muon 4 on matrices), GaLore/APOLLO states in rank-r projections, BAdam one block; DeepSpeed with 16-bit weights
  adds the 32-bit master copy; ZeRO-1/2/3 and FSDP divide by N, offload moves them to the computer's memory.
- activations: what backward keeps, every sequence counted at cutoff_len: per token and layer
  1.25 × (6h + 5q + 2kv + 4·intermediate) values (one h per layer with gradient checkpointing, plus one layer
  recomputed), and the logits (V values in the compute dtype plus two float32 copies for the loss).
- runtime: a fixed share for the CUDA context and allocator (0.75 GiB) or, on the CPU, the data, tokenizer and
  Trainer objects that grow with a run (36 MiB, measured on the tiny and demo models).

Measured against `--probe` on the CPU (tests/engine/test_estimate.py, bench/estimate_error.py): the total is
within 30 % of the growth of the process's resident memory over its size before the model loaded.

The measured probe and the `python -m engine estimate` command are in `engine.probe`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.model.families.registry import find_model
from engine.model.methods import get_method

GIB = 1024**3
CONFIG_MAX_BYTES = 1 << 20  # a model's config.json is a few kB; anything larger is not read
GPU_RUNTIME_BYTES = int(0.75 * GIB)
CPU_RUNTIME_BYTES = 36 * 1024**2
ACTIVATION_SLACK = 1.25  # measured on the CPU (bench/estimate_error.py): autograd's temporaries beyond the formula
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Bytes of optimizer state per trained parameter (32-bit weights; 16-bit halves the AdamW-like ones).
OPTIMIZER_BYTES = {"adamw_torch": 8, "adamw_torch_fused": 8, "adamw_8bit": 2, "adamw_bnb_8bit": 2,
                   "paged_adamw_8bit": 2, "adamw_torch_4bit": 1, "adafactor": 0, "sgd": 0, "adagrad": 4,
                   "lion_32bit": 4}
# Sizes (billions) → (hidden, layers) of typical dense decoders, for hub models whose config.json is not here.
TYPICAL_SHAPES = [(0.1, 576, 30), (0.5, 896, 24), (1.0, 2048, 16), (1.5, 1536, 28), (3.0, 2048, 36),
                  (7.0, 3584, 28), (8.0, 4096, 32), (14.0, 5120, 48), (32.0, 5120, 64), (70.0, 8192, 80),
                  (120.0, 12288, 88), (400.0, 16384, 126)]
# A demo model's shape when it has not been built yet (build_demo_model's defaults).
DEMO_SHAPE = {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": 384, "vocab_size": 4096, "tie_word_embeddings": True}


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a decoder-only transformer that memory depends on."""

    hidden: int
    layers: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool = False
    gated: bool = True
    experts: int = 0  # routed experts of a mixture (0: dense)
    experts_per_token: int = 0
    expert_intermediate: int = 0
    shared_intermediate: int = 0
    dense_layers: int = 0  # a mixture's leading dense layers
    source: str = "config.json"
    approximate: bool = False

    def linears(self, moe: bool = False) -> dict[str, tuple[int, int, int]]:
        """Linear layer name → (in, out, count over all layers); routed experts only with `moe`."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        out = {"q_proj": (self.hidden, q, self.layers), "k_proj": (self.hidden, kv, self.layers),
               "v_proj": (self.hidden, kv, self.layers), "o_proj": (q, self.hidden, self.layers)}
        dense = self.layers if not self.experts else self.dense_layers
        mlp = [(self.intermediate, dense)]
        if self.experts:
            mlp.append((self.shared_intermediate, self.layers - self.dense_layers))
            if moe:
                mlp.append((self.expert_intermediate, (self.layers - self.dense_layers) * self.experts))
        for name, i_out in (("gate_proj", True), ("up_proj", True), ("down_proj", False)):
            if name == "gate_proj" and not self.gated:
                continue
            count = sum(n for size, n in mlp if size)
            width = sum(size * n for size, n in mlp) // max(count, 1)
            out[name] = (self.hidden, width, count) if i_out else (width, self.hidden, count)
        return out

    def layer_params(self) -> int:
        """Parameters of all decoder layers together (experts, router and norms included)."""
        total = sum(i * o * n for i, o, n in self.linears(moe=True).values())
        routed = (self.layers - self.dense_layers) if self.experts else 0
        return total + routed * self.hidden * self.experts + 2 * self.hidden * self.layers

    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    def head_params(self) -> int:
        return 0 if self.tied else self.vocab * self.hidden

    def params(self) -> int:
        """All parameters (every expert counts: they all sit in memory)."""
        return self.embedding_params() + self.head_params() + self.layer_params() + self.hidden

    def active_intermediate(self) -> int:
        """The MLP width one token passes through (its experts and the shared one, or the dense MLP)."""
        if not self.experts:
            return self.intermediate
        return self.experts_per_token * self.expert_intermediate + self.shared_intermediate


def _first(raw: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        if raw.get(key) is not None:
            return raw[key]
    return default


def shape_from_config(raw: dict[str, Any], source: str = "config.json") -> ModelShape:
    """A ModelShape from a transformers config.json mapping (a multimodal model's text_config when it has one)."""
    text = raw.get("text_config") if isinstance(raw.get("text_config"), dict) else raw
    h = int(_first(text, "hidden_size", "n_embd", "d_model"))
    heads = int(_first(text, "num_attention_heads", "n_head", default=max(h // 128, 1)))
    kv = int(_first(text, "num_key_value_heads", "num_kv_heads", default=1 if text.get("multi_query") else heads))
    experts = int(_first(text, "num_local_experts", "num_experts", "n_routed_experts", default=0) or 0)
    moe_i = int(_first(text, "moe_intermediate_size", default=0) or 0)
    shared = int(_first(text, "shared_expert_intermediate_size", default=0) or 0)
    if not shared and text.get("n_shared_experts"):
        shared = int(text["n_shared_experts"]) * moe_i
    inter = int(_first(text, "intermediate_size", "n_inner", "ffn_hidden_size", default=4 * h))
    model_type = str(text.get("model_type") or raw.get("model_type") or "")
    return ModelShape(
        hidden=h, layers=int(_first(text, "num_hidden_layers", "n_layer", "num_layers")), intermediate=inter,
        vocab=int(_first(text, "vocab_size", default=32000)), heads=heads, kv_heads=kv,
        head_dim=int(_first(text, "head_dim", default=h // heads)),
        tied=bool(_first(raw, "tie_word_embeddings", default=text.get("tie_word_embeddings", False))),
        gated=model_type not in ("gpt2", "gpt_neox", "gptj", "opt", "bloom", "falcon", "phi", "starcoder2"),
        experts=experts, experts_per_token=int(_first(text, "num_experts_per_tok", "moe_topk", default=2)),
        expert_intermediate=moe_i or inter, shared_intermediate=shared,
        dense_layers=int(_first(text, "first_k_dense_replace", default=0) or 0) if experts else 0, source=source)


def shape_from_size(billions: float, source: str) -> ModelShape:
    """A typical dense decoder of about `billions` parameters (hidden and depth from the nearest typical model;
    GQA with 128-wide heads, a 128k vocabulary; the MLP width makes up the rest)."""
    _, hidden, layers = min(TYPICAL_SHAPES, key=lambda row: abs(math.log(row[0] / billions)))
    heads = max(hidden // 128, 1)
    vocab = 128_000 if billions >= 1 else 49_152
    rest = billions * 1e9 - 2 * vocab * hidden - layers * 2 * hidden * (hidden + hidden // 4)
    inter = max(int(rest / (3 * hidden * layers)), hidden)
    return ModelShape(hidden=hidden, layers=layers, intermediate=inter, vocab=vocab, heads=heads,
                      kv_heads=max(heads // 4, 1), head_dim=128, source=source, approximate=True)


def read_model_config(folder: Path) -> dict[str, Any] | None:
    """A model folder's config.json as a mapping, or None when missing, too large (over 1 MiB) or not JSON."""
    path = folder / "config.json"
    try:
        if not path.is_file() or path.stat().st_size > CONFIG_MAX_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _cached_hub_config(repo_id: str) -> Path | None:
    """The folder of a hub model's config.json in the local download cache (never online)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - a dependency of transformers
        return None
    found = try_to_load_from_cache(repo_id, "config.json")
    return Path(found).parent if isinstance(found, str) else None


def model_shape(name_or_path: str, *, read_files: bool = True) -> ModelShape:
    """The shape of `model_name_or_path`: `demo` (the built folder, else its recipe), a local folder's
    config.json, a downloaded hub model's, or the registry's size with typical ratios (approximate).

    `read_files=False` reads nothing a user could name: only the registry and the built demo model."""
    from engine.model.demo import DEMO_MODEL_NAME
    from engine.paths import audio_demo_dir, demo_model_dir, vision_demo_dir

    name = (name_or_path or "").strip()
    if name == DEMO_MODEL_NAME:
        raw = read_model_config(demo_model_dir())
        return shape_from_config(raw or DEMO_SHAPE, "demo model" if raw else "demo model recipe (not built yet)")
    media_demos = {"demo-vision": vision_demo_dir, "demo-audio": audio_demo_dir}
    if name in media_demos:  # their language model; the tiny vision or audio side adds little
        raw = read_model_config(media_demos[name]())
        return shape_from_config(raw or DEMO_SHAPE, f"{name} model" if raw else "demo model recipe (not built yet)")
    info = find_model(name)
    folders = [Path(name).expanduser()] if read_files and info is None else []
    if info is not None and info.hf:
        folders += [folder for folder in (_cached_hub_config(info.hf),) if folder is not None]
    elif read_files and "/" in name and not Path(name).expanduser().exists():
        folders += [folder for folder in (_cached_hub_config(name),) if folder is not None]
    for folder in folders:
        raw = read_model_config(folder)
        if raw is not None:
            try:
                return shape_from_config(raw, f"{folder.name}/config.json")
            except (TypeError, ValueError, KeyError, ZeroDivisionError):
                continue
    if info is not None and info.params:
        return shape_from_size(info.params, f"registry size {info.params:g}B")
    raise ValueError(f"cannot estimate {name!r}: no config.json found and the model is not in the registry; "
                     "give a local model folder or a registered hub id")


@dataclass
class Estimate:
    """Memory of one device during training, in bytes, and the parameter counts it follows from."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    runtime: int
    params: int
    trainable_params: int
    devices: int
    on_gpu: bool
    offloaded: int = 0  # optimizer states (and weights) moved to the computer's memory
    approximate: bool = False
    assumptions: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.runtime

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}


def fits(estimate: Estimate, available_bytes: float | None) -> bool | None:
    """Whether the estimate fits `available_bytes` per device (None when that memory is unknown)."""
    if not available_bytes:
        return None
    return estimate.total <= available_bytes


def _selected(names: str | None, shape: ModelShape) -> dict[str, tuple[int, int, int]]:
    """The linear layers a `lora_target`-like value names (`all`: every linear layer but the head)."""
    linears = shape.linears()
    wanted = [n.strip() for n in (names or "all").split(",") if n.strip()]
    if not wanted or "all" in wanted:
        return linears
    return {name: dims for name, dims in linears.items() if name in wanted}


def _extra_params(names: str | None, shape: ModelShape) -> int:
    """Parameters of fully trained extra modules (additional_target, freeze_extra_modules)."""
    total = 0
    for name in (n.strip() for n in (names or "").split(",") if n.strip()):
        total += {"embed_tokens": shape.embedding_params(), "lm_head": shape.head_params()}.get(name, 0)
    return total


def trainable_params(config: RunConfig, shape: ModelShape) -> tuple[int, int]:
    """(trained parameters, decoder layers backward runs through) for the config's method."""
    ft = config.finetuning
    method = ft.finetuning_type
    if method == "full":
        return shape.params(), shape.layers
    if method == "freeze":
        layers = min(abs(ft.freeze_trainable_layers), shape.layers)
        share = 1.0
        modules = [m.strip() for m in ft.freeze_trainable_modules.split(",") if m.strip()]
        if modules and "all" not in modules:
            attn = sum(i * o * n for k, (i, o, n) in shape.linears().items() if k in LINEARS[:4])
            parts = {"self_attn": attn, "mlp": shape.layer_params() - attn}
            share = sum(parts.get(m, 0) for m in modules) / shape.layer_params()
        trained = int(shape.layer_params() / shape.layers * layers * share) + _extra_params(ft.freeze_extra_modules,
                                                                                            shape)
        depth = layers if ft.freeze_trainable_layers > 0 and not ft.freeze_extra_modules else shape.layers
        return trained, depth
    extra = _extra_params(ft.additional_target, shape)
    if method == "oft":
        total = 0
        for i, _o, n in _selected(ft.oft_target, shape).values():
            block = ft.oft_block_size or max(i // max(ft.oft_rank, 1), 1)
            total += (i // block) * block * (block - 1) // 2 * n
        return total + extra, shape.layers
    total = sum((ft.lora_rank * (i + o) + (o if ft.use_dora else 0)) * n
                for i, o, n in _selected(ft.lora_target, shape).values())
    return total + extra, shape.layers


def _sharding(config: RunConfig, devices: int) -> tuple[int, bool, bool]:
    """(ZeRO-like stage 0–3, optimizer offloaded, weights offloaded) from the DeepSpeed JSON or the FSDP options."""
    t = config.training
    if t.deepspeed:
        try:
            path = Path(t.deepspeed)
            ds = json.loads(path.read_text(encoding="utf-8")) if path.stat().st_size <= CONFIG_MAX_BYTES else {}
        except (OSError, ValueError):
            ds = {}
        zero = ds.get("zero_optimization", {}) if isinstance(ds, dict) else {}
        stage = int(zero.get("stage", 0) or 0)
        off = lambda key: (zero.get(key) or {}).get("device", "none") in ("cpu", "nvme")  # noqa: E731
        return stage, off("offload_optimizer"), off("offload_param")
    if t.fsdp and devices > 1:
        options = str(t.fsdp)
        stage = 3 if "full_shard" in options or "hybrid" in options else 2 if "shard_grad_op" in options else 0
        return stage, "offload" in options, "offload" in options and stage == 3
    return 0, False, False


def _optimizer_bytes(config: RunConfig, shape: ModelShape, trained: int, notes: list[str]) -> float:
    """Optimizer state of all trained parameters (before sharding), in bytes."""
    ft, optim = config.finetuning, config.training.optim
    per = OPTIMIZER_BYTES.get(optim, 8) / (2 if ft.pure_bf16 and optim.startswith("adamw_torch") else 1)
    if optim not in OPTIMIZER_BYTES:
        notes.append(f"optimizer {optim}: counted like AdamW")
    full = ft.finetuning_type in ("full", "freeze")
    matrices = sum(i * o * n for i, o, n in shape.linears(moe=True).values()) if full else 0
    matrices = min(matrices, trained)
    if full and (ft.use_galore or ft.use_apollo):
        rank = ft.galore_rank if ft.use_galore else ft.apollo_rank
        projected = sum((2 * rank * max(i, o) + (rank * min(i, o) if ft.use_galore else 0)) * 4 * n
                        for i, o, n in shape.linears(moe=True).values())
        notes.append(f"{'GaLore' if ft.use_galore else 'APOLLO'}: rank-{rank} projected states on the matrices")
        return projected + (trained - matrices) * per
    if full and ft.use_badam:
        share = 1 / shape.layers if ft.badam_mode == "layer" else ft.badam_update_ratio
        notes.append("BAdam: optimizer state for one block at a time")
        return trained * share * per
    if ft.use_adam_mini:
        return trained * 4
    if ft.use_muon:
        return matrices * 4 + (trained - matrices) * per
    if optim == "adafactor":
        return 8 * sum((i + o) * n for i, o, n in shape.linears().values()) * trained / max(shape.params(), 1)
    return trained * per


def _weight_bytes(config: RunConfig, shape: ModelShape, trained: int, frozen_bytes: int, trained_bytes: int,
                  notes: list[str]) -> float:
    """All weights of the model (before sharding) in bytes."""
    bits = config.model.quantization_bit
    if bits and get_method(config.finetuning.finetuning_type).quantized_base:
        matrices = sum(i * o * n for i, o, n in shape.linears(moe=True).values())
        per = 1.0 if bits == 8 else 0.5 + (1 / 64 + 4 / (64 * 256) if config.model.double_quantization else 4 / 64)
        notes.append(f"{bits}-bit base: decoder matrices at {per:.3g} bytes each; embeddings, norms and head not "
                     "quantized")
        return matrices * per + (shape.params() - matrices) * frozen_bytes + trained * trained_bytes
    if bits:
        notes.append(f"quantization_bit {bits} ignored: {config.finetuning.finetuning_type} trains unquantized "
                     "weights")
    peft = get_method(config.finetuning.finetuning_type).peft_type is not None
    frozen = shape.params() if peft else shape.params() - trained
    return frozen * frozen_bytes + trained * trained_bytes


def _activation_bytes(config: RunConfig, shape: ModelShape, depth: int, act_bytes: int, notes: list[str]) -> float:
    """What the forward pass keeps for backward, for one micro-batch at the cutoff length."""
    tokens = config.training.per_device_train_batch_size * config.data.cutoff_len
    q, kv = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    # Kept per token and layer: two RMSNorms' input, scaled and output (6h); q, k and v repeated to every head,
    # the attention output and its reshaped copy (5q), k and v themselves (2kv); the MLP's gate, its activation,
    # up and their product (4 × intermediate). ACTIVATION_SLACK covers the temporaries this leaves out.
    per_layer = (6 * shape.hidden + 5 * q + 2 * kv + 4 * shape.active_intermediate()) * act_bytes * ACTIVATION_SLACK
    checkpointing = config.training.gradient_checkpointing and not config.model.disable_gradient_checkpointing
    checkpointing = checkpointing or bool(config.passthrough.get("activation_checkpointing"))
    if checkpointing:
        layers = tokens * (depth * shape.hidden * act_bytes + per_layer)
        notes.append("gradient checkpointing: one hidden state per layer kept, one layer recomputed at a time")
    else:
        layers = tokens * depth * per_layer
    logits = tokens * shape.vocab * (act_bytes + 8)
    notes.append(f"activations for {config.training.per_device_train_batch_size} × {config.data.cutoff_len} tokens "
                 "(every sequence at cutoff_len; attention keeps no length × length matrix)")
    return layers + logits


def estimate_memory(config: RunConfig, *, devices: int = 1, on_gpu: bool = True, shape: ModelShape | None = None,
                    read_files: bool = True) -> Estimate:
    """Memory of one of `devices` devices (GPUs when `on_gpu`, else the computer) while `config` trains."""
    shape = shape or model_shape(config.model.model_name_or_path, read_files=read_files)
    devices = max(int(devices), 1)
    t, ft = config.training, config.finetuning
    notes = [f"model shape from {shape.source}" + (" (approximate)" if shape.approximate else "")]
    trained, depth = trainable_params(config, shape)
    sixteen = ft.pure_bf16 or (on_gpu and (t.bf16 or t.fp16))
    stage, offload_optimizer, offload_weights = _sharding(config, devices)
    frozen_bytes = 2 if sixteen else 4
    # DeepSpeed trains 16-bit weights and keeps the float32 master copy with the optimizer; FSDP keeps float32 shards.
    deepspeed16 = bool(t.deepspeed) and sixteen and not ft.pure_bf16
    trained_bytes = 2 if ft.pure_bf16 or deepspeed16 else 4
    act_bytes = 2 if sixteen or t.bf16 else 4
    weights = _weight_bytes(config, shape, trained, frozen_bytes, trained_bytes, notes)
    gradients = trained * trained_bytes
    optimizer = _optimizer_bytes(config, shape, trained, notes)
    if deepspeed16:
        optimizer += trained * 4
        notes.append("DeepSpeed: 16-bit weights with a 32-bit master copy in the optimizer states")
    if ft.finetuning_type in ("full", "freeze") and ((ft.use_galore and ft.galore_layerwise)
                                                     or (ft.use_apollo and ft.apollo_layerwise) or ft.use_badam):
        gradients = gradients / shape.layers
        notes.append("gradients of one layer at a time (layer-wise update)")
    layer_weights = shape.layer_params() / shape.layers * frozen_bytes
    offloaded = 0.0
    if stage >= 1 and devices > 1:
        optimizer /= devices
    if stage >= 2 and devices > 1:
        gradients /= devices
    if stage >= 3 and devices > 1:
        weights = weights / devices + layer_weights
    if offload_optimizer:
        offloaded += optimizer
        optimizer = 0
    if offload_weights and stage >= 3:
        offloaded += weights
        weights = layer_weights
    if stage or t.fsdp:
        notes.append(f"sharding: {'ZeRO stage ' + str(stage) if t.deepspeed else 'FSDP'} over {devices} devices"
                     + (", offload to CPU memory" if offloaded else ""))
    elif devices > 1:
        notes.append(f"DDP: each of the {devices} devices holds a full copy")
    activations = _activation_bytes(config, shape, depth, act_bytes, notes)
    return Estimate(weights=int(weights), gradients=int(gradients), optimizer=int(optimizer),
                    activations=int(activations), runtime=GPU_RUNTIME_BYTES if on_gpu else CPU_RUNTIME_BYTES,
                    params=shape.params(), trainable_params=int(trained), devices=devices, on_gpu=on_gpu,
                    offloaded=int(offloaded), approximate=shape.approximate, assumptions=notes)


# ---------------------------------------------------------------- the measured probe
