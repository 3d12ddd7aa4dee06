"""The training stage and the finetuning method (full, freeze, LoRA family), RLHF, GaLore and BAdam settings."""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.fields import option

STAGE_CHOICES = ["pt", "sft", "rm", "ppo", "dpo", "kto", "grpo"]
FINETUNING_TYPES = ["full", "freeze", "lora", "oft"]
PREF_LOSSES = ["sigmoid", "hinge", "ipo", "kto_pair", "orpo", "simpo"]


@dataclass
class FinetuningArguments:
    """What is trained and how."""

    stage: str = option("sft", "Training stage.", choices=STAGE_CHOICES)
    finetuning_type: str = option("lora", "Which weights are trained.", choices=FINETUNING_TYPES)
    pure_bf16: bool = option(False, "Train in pure bfloat16, without float32 master weights.")
    freeze_trainable_layers: int = option(2, "Freeze: train the last N layers (negative: the first N).",
                                          min=-128, max=128)
    freeze_trainable_modules: str = option("all", "Freeze: comma-separated module names to train in those layers.")
    freeze_extra_modules: str | None = option(None, "Freeze: other modules to train as well (e.g. embed_tokens).")
    freeze_vision_tower: bool = option(True, "Images/video: keep the vision encoder's weights fixed.")
    freeze_multi_modal_projector: bool = option(True, "Images/video/audio: keep the projector that maps media "
                                                "features into the language model fixed.")
    freeze_language_model: bool = option(False, "Images/video/audio: keep the language model fixed (train only "
                                         "the media side).")
    lora_rank: int = option(8, "LoRA rank: size of the low-rank update.", min=1, max=1024)
    lora_alpha: int | None = option(None, "LoRA scale numerator (default: twice the rank).", min=1, max=2048)
    lora_dropout: float = option(0.0, "Dropout on the LoRA input.", min=0.0, max=1.0, step=0.01)
    lora_target: str = option("all", "Comma-separated modules to adapt, or `all` for every linear layer.")
    additional_target: str | None = option(None, "Modules trained fully beside the LoRA adapters (e.g. lm_head).")
    loraplus_lr_ratio: float | None = option(None, "LoRA+: learning-rate ratio of B to A matrices.", min=0.0, step=1.0)
    loraplus_lr_embedding: float = option(1e-6, "LoRA+: learning rate of embedding adapters.", min=0.0)
    use_rslora: bool = option(False, "Rank-stabilised LoRA scaling (alpha / sqrt(rank)).")
    use_dora: bool = option(False, "Weight-decomposed LoRA (DoRA).")
    pissa_init: bool = option(False, "Initialise LoRA from the principal singular vectors (PiSSA).")
    pissa_iter: int = option(16, "PiSSA: fast-SVD iterations (-1 for exact SVD).", min=-1)
    pissa_convert: bool = option(False, "PiSSA: convert the adapter to a plain LoRA when saving.")
    oft_rank: int = option(0, "OFT: number of orthogonal blocks per layer (0: derived from oft_block_size).", min=0)
    oft_block_size: int = option(32, "OFT: size of each orthogonal block (0: derived from oft_rank).", min=0)
    oft_target: str = option("all", "OFT: comma-separated modules to adapt, or `all` for every linear layer.")
    module_dropout: float = option(0.0, "OFT: probability of dropping a whole block's rotation during training.",
                                   min=0.0, max=1.0, step=0.01)
    create_new_adapter: bool = option(False, "Add a fresh adapter on top of the loaded ones instead of continuing.")
    neftune_noise_alpha: float | None = option(None, "NEFTune: noise scale added to embeddings.", min=0.0, step=1.0)
    pref_beta: float = option(0.1, "Preference: beta (strength of the reference constraint).", min=0.0, step=0.01)
    pref_ftx: float = option(0.0, "Preference: weight of the extra SFT loss.", min=0.0, step=0.1)
    pref_bco_weight: float = option(0.0, "DPO: weight of the BCO (binary classifier) loss added to the "
                                    "preference loss.", min=0.0, step=0.1)
    ld_alpha: float | None = option(None, "LD-DPO: weight (0–1) of the reply tokens beyond the shorter reply's "
                                    "length (1: plain DPO).", min=0.0, max=1.0, step=0.05)
    pref_loss: str = option("sigmoid", "Preference loss.", choices=PREF_LOSSES)
    dpo_label_smoothing: float = option(0.0, "DPO: label smoothing (robust DPO).", min=0.0, max=0.5, step=0.01)
    kto_chosen_weight: float = option(1.0, "KTO: weight of desirable examples.", min=0.0, step=0.1)
    kto_rejected_weight: float = option(1.0, "KTO: weight of undesirable examples.", min=0.0, step=0.1)
    simpo_gamma: float = option(0.5, "SimPO: target reward margin.", min=0.0, step=0.1)
    ref_model: str | None = option(None, "Reference model for preference training (default: the base).")
    ref_model_adapters: str | None = option(None, "Adapters of the reference model.")
    ref_model_quantization_bit: int | None = option(None, "Quantize the reference model.", choices=[None, 8, 4])
    reward_model: str | None = option(None, "Reward model (folder or run) for PPO / GRPO.")
    reward_model_adapters: str | None = option(None, "Adapters of the reward model.")
    reward_model_quantization_bit: int | None = option(None, "Quantize the reward model.", choices=[None, 8, 4])
    reward_model_type: str = option("lora", "How the reward model was trained.", choices=["lora", "full", "api"])
    reward_funcs: str | None = option(None, "PPO / GRPO rewards, comma-separated, each `name` or `name:weight` "
                                      "(exact_match, format, length, reward_model); their weighted sum is the score.")
    ppo_buffer_size: int = option(1, "PPO: mini-batches per optimisation epoch.", min=1)
    ppo_epochs: int = option(4, "PPO: optimisation epochs per batch.", min=1)
    ppo_score_norm: bool = option(False, "PPO: normalise scores.")
    ppo_target: float = option(6.0, "PPO: target KL of the adaptive KL controller (0: fixed ppo_kl_coef).", min=0.0)
    ppo_whiten_rewards: bool = option(False, "PPO: whiten rewards before computing advantages.")
    use_galore: bool = option(False, "GaLore: memory-efficient full training by gradient projection.")
    galore_target: str = option("all", "GaLore: modules to project.")
    galore_rank: int = option(16, "GaLore: projection rank.", min=1)
    galore_update_interval: int = option(200, "GaLore: steps between projection updates.", min=1)
    galore_scale: float = option(2.0, "GaLore: update scale.", min=0.0, step=0.1)
    galore_proj_type: str = option("std", "GaLore: projection type.",
                                   choices=["std", "reverse_std", "right", "left", "full"])
    galore_layerwise: bool = option(False, "GaLore: update layer by layer to save memory.")
    use_apollo: bool = option(False, "APOLLO: memory-efficient full training with an approximate, low-rank "
                              "scaled AdamW.")
    apollo_target: str = option("all", "APOLLO: comma-separated modules it optimises, or `all` (every linear "
                                "layer).")
    apollo_rank: int = option(16, "APOLLO: rank of the gradient projection.", min=1)
    apollo_update_interval: int = option(200, "APOLLO: steps between projection updates.", min=1)
    apollo_scale: float = option(32.0, "APOLLO: scale of the update.", min=0.0, step=1.0)
    apollo_proj: str = option("random", "APOLLO: projection (random or SVD).", choices=["svd", "random"])
    apollo_proj_type: str = option("std", "APOLLO: side of the projection.", choices=["std", "right", "left"])
    apollo_scale_type: str = option("channel", "APOLLO: scaling per channel or per tensor.",
                                    choices=["channel", "tensor"])
    apollo_layerwise: bool = option(False, "APOLLO: update layer by layer to save memory.")
    apollo_scale_front: bool = option(False, "APOLLO: limit the norm growth before scaling the gradient.")
    use_adam_mini: bool = option(False, "Adam-mini: AdamW with one learning rate per block (less optimiser "
                                 "memory).")
    use_muon: bool = option(False, "Muon: orthogonalised momentum for 2-D weight matrices (AdamW for the rest).")
    use_llama_pro: bool = option(False, "LLaMA Pro: train only the blocks added by `studio expand-model` "
                                 "(with finetuning_type freeze).")
    use_badam: bool = option(False, "BAdam: block-coordinate full training.")
    badam_mode: str = option("layer", "BAdam: switch blocks by layer or by ratio.", choices=["layer", "ratio"])
    badam_start_block: int | None = option(None, "BAdam: first block to update.", min=0)
    badam_switch_mode: str = option("ascending", "BAdam: order of blocks.",
                                    choices=["ascending", "descending", "random", "fixed"])
    badam_switch_interval: int = option(50, "BAdam: steps between block switches.", min=1)
    badam_update_ratio: float = option(0.05, "BAdam: share of parameters updated (ratio mode).", min=0.0, max=1.0, step=0.01)
    badam_mask_mode: str = option("adjacent", "BAdam: mask mode (ratio mode).", choices=["adjacent", "scatter"])
    badam_verbose: int = option(0, "BAdam: verbosity.", min=0, max=2)
    use_dft_loss: bool = option(False, "SFT: DFT loss (each token's loss weighted by its own probability).")
    use_asft_loss: bool = option(False, "SFT: ASFT loss (DFT plus a KL term that keeps the model near the "
                                 "reference).")
    asft_alpha: float = option(0.1, "ASFT: weight of the KL term.", min=0.0, step=0.05)
    use_eaft_loss: bool = option(False, "SFT: EAFT loss (token losses weighted by the model's entropy).")
    eaft_alpha: float = option(1.0, "EAFT: power of the entropy weight.", min=0.0, step=0.1)
    early_stopping_steps: int | None = option(None, "Stop when metric_for_best_model has not improved for this "
                                              "many evaluations.", min=1)
    use_swanlab: bool = option(False, "Log the run to SwanLab.")
    swanlab_project: str | None = option("llamafactory", "SwanLab: project name.")
    swanlab_workspace: str | None = option(None, "SwanLab: workspace (default: your own).")
    swanlab_run_name: str | None = option(None, "SwanLab: experiment name (default: run_name).")
    swanlab_mode: str = option("cloud", "SwanLab: upload to the cloud or keep logs local.",
                               choices=["cloud", "local"])
    swanlab_api_key: str | None = option(None, "SwanLab: API key.", secret=True)
    swanlab_logdir: str | None = option(None, "SwanLab: folder of local logs.")
    swanlab_lark_webhook_url: str | None = option(None, "SwanLab: Lark (Feishu) webhook to notify.", secret=True)
    swanlab_lark_secret: str | None = option(None, "SwanLab: secret of the Lark webhook.", secret=True)
    plot_loss: bool = option(True, "Save the loss curve (training_loss.png, and training_eval_loss.png "
                                 "with evaluation) at the end.")
    compute_accuracy: bool = option(False, "Compute token accuracy during evaluation.")
    disable_shuffling: bool = option(False, "Keep the training data in order.")
    include_effective_tokens_per_second: bool = option(False, "Report tokens per second over real tokens.")
    # RL (PPO, GRPO)
    reward_format_pattern: str = option(r"^\s*-?\d+(\.\d+)?\s*$",
                                        "Format reward: regular expression a whole completion must match "
                                        "(default: a number and nothing else).")
    reward_length_max: int = option(64, "Length reward: completions this many characters or longer score 0.",
                                    min=1)
    max_completion_length: int = option(128, "PPO / GRPO: longest sampled completion in tokens.", min=1, max=32768)
    num_generations: int = option(4, "GRPO: completions sampled per prompt (must divide the generation batch).",
                                  min=2, max=256)
    grpo_beta: float = option(0.0, "GRPO: weight of the KL penalty against the reference model (0: no reference).",
                              min=0.0)
    ppo_kl_coef: float = option(0.05, "PPO: weight of the per-token KL penalty (initial value when ppo_target > 0).",
                                min=0.0)
    ppo_gamma: float = option(1.0, "PPO: discount factor of the advantage estimate (GAE).", min=0.0, max=1.0,
                              step=0.01)
    ppo_lam: float = option(0.95, "PPO: GAE lambda (bias–variance trade-off of the advantages).", min=0.0, max=1.0,
                            step=0.01)
    ppo_cliprange: float = option(0.2, "PPO: clip range of the policy probability ratio.", min=0.0, max=1.0,
                                  exclusive_min=True, step=0.01)
    ppo_cliprange_value: float = option(0.2, "PPO: clip range of the value prediction.", min=0.0,
                                        exclusive_min=True, step=0.01)
    ppo_vf_coef: float = option(0.1, "PPO: weight of the value loss in the total loss.", min=0.0, step=0.01)
