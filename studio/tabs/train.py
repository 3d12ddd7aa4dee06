"""The Train tab's form: stage, data, hyperparameters, method groups, run name and the action buttons."""

from __future__ import annotations

from typing import Any

from engine.model.methods import METHODS, adapter_methods
from engine.train.method_checks import OPTIMIZER_METHODS
from studio.capabilities import gpu_label, gpu_list
from studio.context import Context
from studio.i18n import choice_pairs, t
from studio.tabs import train_media
from studio.tabs.train_media import MEDIA_KEYS, initial_template, media_visibility
from studio.widgets import STRATEGIES

COMPUTE_TYPES = ["fp32", "bf16", "fp16", "pure_bf16"]


# Which method or stage each group of settings belongs to (other groups are always shown).
WHOLE_WEIGHTS = {name for name in METHODS if name not in adapter_methods()}  # full and freeze: no adapters
GROUP_METHODS = {"lora": {"lora"}, "oft": {"oft"}, "freeze": {"freeze"}, "galore": WHOLE_WEIGHTS,
                 "badam": WHOLE_WEIGHTS, "apollo": WHOLE_WEIGHTS}
GROUP_STAGES = {"rlhf": {"rm", "ppo", "dpo", "kto", "grpo"}, "sft_loss": {"sft"}}
# The switches of the always-shown Optimizers group; the ones the engine runs on the model's own weights only
# (APOLLO, Adam-mini) are shown for full and freeze, the others (Muon) for every method.
OPTIMIZER_SWITCHES = ("use_muon", "use_adam_mini", "use_apollo")
FIELD_METHODS = {m.key: WHOLE_WEIGHTS for m in OPTIMIZER_METHODS if m.key in OPTIMIZER_SWITCHES and m.full_weights}


def group_visibility(method: str, stage: str) -> dict[str, bool]:
    """Show only the settings that matter for the chosen method and stage: group name or field name → shown."""
    shown = {name: method in methods for name, methods in {**GROUP_METHODS, **FIELD_METHODS}.items()}
    shown.update({name: stage in stages for name, stages in GROUP_STAGES.items()})
    return shown


def _group(ctx: Context, name: str, open_: bool = False):  # noqa: ANN202 - a gradio context manager
    import gradio as gr

    visible = {**group_visibility(ctx.initial.get("finetuning_type", "lora"), ctx.initial.get("stage", "sft")),
               **media_visibility(initial_template(ctx))}
    accordion = gr.Accordion(t(f"train.{name}.label", ctx.lang), open=open_, elem_id=f"group_{name}",
                             visible=visible.get(name, True))
    ctx.add(f"group_{name}", accordion, key=f"train.{name}", kind="accordion")
    return accordion


def _labelled(ctx: Context, name: str, component_cls, key: str, **kwargs):  # noqa: ANN001, ANN202
    info = t(f"{key}.info", ctx.lang) if kwargs.pop("with_info", True) else None
    component = component_cls(label=t(f"{key}.label", ctx.lang), info=info, elem_id=name, **kwargs)
    return ctx.add(name, component, key=key)


def build(ctx: Context) -> None:
    """Create the training form (widgets named after config keys; defaults and ranges from the engine)."""
    import gradio as gr

    from studio.components import config_widget

    lang = ctx.lang
    with gr.Row():
        config_widget(ctx, "stage", value="sft", scale=2)
        config_widget(ctx, "dataset_dir", value="data", scale=2)
        picker = config_widget(ctx, "dataset", choices=[], scale=4, multiselect=True, allow_custom_value=True,
                               value=ctx.initial.get("dataset", []))
        # Its entries are (label, name) pairs with download marks; the one refresh path of file lists keeps them
        # current (page load, language switch), so they are not given to config_widget's fixed relabelling.
        picker.choices = initial_datasets(ctx)
    with gr.Row():
        config_widget(ctx, "learning_rate", widget="number")
        config_widget(ctx, "num_train_epochs", widget="number")
        config_widget(ctx, "max_grad_norm", widget="number")
        config_widget(ctx, "max_samples", widget="number")
        _labelled(ctx, "compute_type", gr.Dropdown, "train.compute_type", value="fp32", interactive=True,
                  choices=[(t(f"train.compute_type.choices.{c}", lang), c) for c in COMPUTE_TYPES])
        ctx.labels["compute_type"].choices = COMPUTE_TYPES
    with gr.Row():
        config_widget(ctx, "cutoff_len", widget="number")
        config_widget(ctx, "per_device_train_batch_size", widget="number")
        config_widget(ctx, "gradient_accumulation_steps", widget="number")
        config_widget(ctx, "val_size", widget="slider", maximum=0.5, step=0.01)
        config_widget(ctx, "lr_scheduler_type")
    with _group(ctx, "more"):
        with gr.Row():
            config_widget(ctx, "max_steps", widget="number", value=0)
            config_widget(ctx, "logging_steps", widget="number")
            config_widget(ctx, "save_steps", widget="number")
            config_widget(ctx, "warmup_steps", widget="number")
            config_widget(ctx, "neftune_noise_alpha", widget="number")
            config_widget(ctx, "report_to")
        with gr.Row():
            config_widget(ctx, "eval_strategy")
            config_widget(ctx, "eval_steps", widget="number")
            config_widget(ctx, "early_stopping_patience", widget="number")
            config_widget(ctx, "early_stopping_steps", widget="number")
            config_widget(ctx, "load_best_model_at_end")
            config_widget(ctx, "metric_for_best_model")
        with gr.Row():
            config_widget(ctx, "packing", value=False)
            config_widget(ctx, "train_on_prompt")
            config_widget(ctx, "mask_history")
            config_widget(ctx, "preserve_thinking")
        with gr.Row():  # the tokenizer
            config_widget(ctx, "resize_vocab")
            config_widget(ctx, "new_special_tokens_config", scale=2)
            config_widget(ctx, "init_special_tokens")
        _labelled(ctx, "extra_args", gr.Textbox, "train.extra_args", value="{}", lines=2, interactive=True)
    with _group(ctx, "lora"):
        with gr.Row():
            config_widget(ctx, "lora_rank", widget="number")
            config_widget(ctx, "lora_alpha", widget="number")
            config_widget(ctx, "lora_dropout", widget="number")
            config_widget(ctx, "loraplus_lr_ratio", widget="number")
        with gr.Row():
            config_widget(ctx, "create_new_adapter")
            config_widget(ctx, "use_rslora")
            config_widget(ctx, "use_dora")
            config_widget(ctx, "pissa_init")
        with gr.Row():
            config_widget(ctx, "lora_target")
            config_widget(ctx, "additional_target")
    with _group(ctx, "oft"), gr.Row():
        config_widget(ctx, "oft_block_size", widget="number")
        config_widget(ctx, "oft_rank", widget="number")
        config_widget(ctx, "module_dropout", widget="number")
        config_widget(ctx, "oft_target")
    with _group(ctx, "freeze"), gr.Row():
        config_widget(ctx, "freeze_trainable_layers", widget="number")
        config_widget(ctx, "freeze_trainable_modules")
        config_widget(ctx, "freeze_extra_modules")
        config_widget(ctx, "use_llama_pro")
    with _group(ctx, "media"):
        train_media.build(ctx)
    with _group(ctx, "rlhf"):
        with gr.Row():
            config_widget(ctx, "pref_beta", widget="number")
            config_widget(ctx, "pref_ftx", widget="number")
            config_widget(ctx, "pref_loss")
            config_widget(ctx, "simpo_gamma", widget="number")
            config_widget(ctx, "kto_chosen_weight", widget="number")
            config_widget(ctx, "kto_rejected_weight", widget="number")
        with gr.Row():
            config_widget(ctx, "reward_model", choices=[], allow_custom_value=True)
            config_widget(ctx, "reward_funcs")
            config_widget(ctx, "num_generations", widget="number")
            config_widget(ctx, "max_completion_length", widget="number")
            config_widget(ctx, "ppo_epochs", widget="number")
        with gr.Row():  # DPO variants
            config_widget(ctx, "pref_bco_weight", widget="number")
            config_widget(ctx, "ld_alpha", widget="number")
    with _group(ctx, "sft_loss"), gr.Row():
        config_widget(ctx, "use_dft_loss")
        config_widget(ctx, "use_asft_loss")
        config_widget(ctx, "asft_alpha", widget="number")
        config_widget(ctx, "use_eaft_loss")
        config_widget(ctx, "eaft_alpha", widget="number")
    _optimizers(ctx)
    with _group(ctx, "galore"), gr.Row():
        config_widget(ctx, "use_galore")
        config_widget(ctx, "galore_rank", widget="number")
        config_widget(ctx, "galore_update_interval", widget="number")
        config_widget(ctx, "galore_scale", widget="number")
        config_widget(ctx, "galore_target")
    with _group(ctx, "badam"), gr.Row():
        config_widget(ctx, "use_badam")
        config_widget(ctx, "badam_mode")
        config_widget(ctx, "badam_switch_mode")
        config_widget(ctx, "badam_switch_interval", widget="number")
        config_widget(ctx, "badam_update_ratio", widget="number")
    with _group(ctx, "swanlab"), gr.Row():
        config_widget(ctx, "use_swanlab")
        config_widget(ctx, "swanlab_mode")
        config_widget(ctx, "swanlab_project")
        config_widget(ctx, "swanlab_workspace")
        config_widget(ctx, "swanlab_run_name")
    with _group(ctx, "identity"), gr.Row():
        config_widget(ctx, "identity_name")
        config_widget(ctx, "identity_author")
    _distributed(ctx)
    with _group(ctx, "sweep"):
        _labelled(ctx, "sweep_spec", gr.Textbox, "train.sweep_spec", value="", lines=3, interactive=True,
                  placeholder=t("train.sweep_spec.placeholder", lang))
        with gr.Row():
            ctx.add("sweep_count", gr.Markdown("", elem_id="sweep_count"), key="train.sweep_count")
            ctx.add("sweep_start", gr.Button(t("train.sweep_start.label", lang), elem_id="sweep_start"),
                    key="train.sweep_start", kind="button")
    with gr.Row():
        _labelled(ctx, "run_name", gr.Textbox, "train.run_name", value="", interactive=True, scale=3)
        _labelled(ctx, "config_path", gr.Textbox, "train.config_path", value="", interactive=True, scale=3)
    # Abort starts plain: a bright red button while nothing runs reads as an alarm. The monitor's poll gives it
    # variant="stop" while a run is live.
    with gr.Row():
        for name, variant in (("preview_button", "secondary"), ("save_button", "secondary"),
                              ("load_button", "secondary"), ("start_button", "primary"), ("abort_button", "secondary")):
            ctx.add(name, gr.Button(t(f"train.{name}.label", lang), variant=variant, elem_id=name),
                    key=f"train.{name}", kind="button")
    with gr.Row(equal_height=True):  # the resource estimate beside Start (studio/estimate_line.py)
        ctx.add("estimate_line", gr.Markdown("", label=t("train.estimate_line.label", lang), elem_id="estimate_line"),
                key="train.estimate_line")  # relabelled; its text comes from the estimate handler
        ctx.add("estimate_button", gr.Button(t("train.estimate_button.label", lang), variant="secondary",
                                             elem_id="estimate_button", scale=0, min_width=160),
                key="train.estimate_button", kind="button")


def _distributed(ctx: Context) -> None:
    """Devices and distribution: the GPUs to train on (none chosen: all), or on a machine without GPUs the number of
    CPU processes (DDP over gloo); and the strategy over them (DDP, DeepSpeed ZeRO-2/3 with offloads, FSDP2)."""
    import gradio as gr

    lang, gpus = ctx.lang, gpu_list()
    with _group(ctx, "distributed"), gr.Row():
        _labelled(ctx, "devices", gr.Dropdown, "train.devices", value=[], multiselect=True, interactive=True,
                  choices=[(gpu_label(gpu), gpu["index"]) for gpu in gpus], visible=bool(gpus), scale=3)
        ctx.add("cpu_only", gr.Markdown(t("train.cpu_only.label", lang), elem_id="cpu_only", visible=not gpus),
                key="train.cpu_only", kind="markdown")
        _labelled(ctx, "cpu_processes", gr.Number, "train.cpu_processes", value=1, minimum=1, maximum=64,
                  precision=0, interactive=True, visible=not gpus)
        _labelled(ctx, "strategy", gr.Dropdown, "train.strategy", value="auto", interactive=True, scale=2,
                  choices=choice_pairs("train.strategy", list(STRATEGIES), lang))
        ctx.labels["strategy"].choices = list(STRATEGIES)  # the labels follow a language switch
        _labelled(ctx, "offload_optimizer", gr.Checkbox, "train.offload_optimizer", value=False, interactive=True,
                  visible=False)
        _labelled(ctx, "offload_params", gr.Checkbox, "train.offload_params", value=False, interactive=True,
                  visible=False)
    with gr.Row():  # a Ray cluster to send the run to (studio/ray_jobs.py); empty: this machine
        _labelled(ctx, "ray_address", gr.Textbox, "train.ray_address", value="", interactive=True,
                  placeholder="http://<head>:8265")


def offload_visibility(strategy: str) -> tuple[bool, bool]:
    """Strategy → whether the (optimizer, parameter) offload boxes apply: ZeRO-2 offloads the optimizer state, ZeRO-3
    also the parameters, FSDP2 the parameters (and their gradients)."""
    return strategy in ("zero2", "zero3"), strategy in ("zero3", "fsdp2")


def _optimizers(ctx: Context) -> None:
    """The Optimizers group: Muon for every method; Adam-mini and APOLLO (its settings folded in a group of their
    own) only where the whole weights train."""
    import gradio as gr

    from studio.components import config_widget

    shown = group_visibility(ctx.initial.get("finetuning_type", "lora"), ctx.initial.get("stage", "sft"))
    with _group(ctx, "optimizers"):
        with gr.Row():
            for name in OPTIMIZER_SWITCHES:
                config_widget(ctx, name, visible=shown.get(name, True))
        with _group(ctx, "apollo"):
            with gr.Row():
                for name in ("apollo_rank", "apollo_update_interval", "apollo_scale"):
                    config_widget(ctx, name, widget="number")
                config_widget(ctx, "apollo_target")
            with gr.Row():
                for name in ("apollo_proj", "apollo_proj_type", "apollo_scale_type", "apollo_layerwise",
                             "apollo_scale_front"):
                    config_widget(ctx, name)


def wire(ctx: Context) -> None:
    """Method or stage changed → show the groups of settings (and the method-bound settings) that apply."""
    import gradio as gr

    names = [*GROUP_METHODS, *GROUP_STAGES, *FIELD_METHODS]

    def toggle(method: str, stage: str) -> list[Any]:
        """(method, stage) → visibility updates of the method and stage groups and the method-bound settings."""
        shown = group_visibility(method, stage)
        return [gr.update(visible=shown[name]) for name in names]

    def reward_models(stage: str) -> Any:
        """PPO / GRPO chosen → offer the finished reward-model runs."""
        from studio.runs import reward_model_runs

        return gr.update(choices=reward_model_runs()) if stage in ("ppo", "grpo") else gr.update()

    outputs = [ctx[name] if name in FIELD_METHODS else ctx[f"group_{name}"] for name in names]
    for trigger in ("finetuning_type", "stage"):
        ctx[trigger].change(toggle, [ctx["finetuning_type"], ctx["stage"]], outputs, api_visibility="private")
    ctx["stage"].change(reward_models, ctx["stage"], ctx["reward_model"], api_visibility="private")

    def offloads(strategy: str) -> list[Any]:
        """Strategy → visibility updates of the optimizer and parameter offload boxes."""
        return [gr.update(visible=shown) for shown in offload_visibility(strategy)]

    ctx["strategy"].change(offloads, ctx["strategy"], [ctx["offload_optimizer"], ctx["offload_params"]],
                           api_visibility="private")
    train_media.wire(ctx)
    _wire_estimate(ctx)


# Settings the memory estimate depends on; the page load (which sets run_name) and a language switch refresh it too.
ESTIMATE_TRIGGERS = ("model_name", "model_path", "finetuning_type", "quantization_bit", "compute_type", "cutoff_len",
                     "per_device_train_batch_size", "lora_rank", "lora_target", "additional_target", "use_dora",
                     "oft_block_size", "oft_rank", "oft_target", "freeze_trainable_layers", "freeze_trainable_modules",
                     "freeze_extra_modules", "use_galore", "galore_rank", "use_badam", "badam_mode", "use_apollo",
                     "apollo_rank", "use_adam_mini", "use_muon", "devices", "cpu_processes", "strategy",
                     "offload_optimizer", "offload_params", "extra_args", "run_name", "lang")


def _wire_estimate(ctx: Context) -> None:
    """Settings changed → the estimate line; Measure → the same line plus a few measured training steps."""
    from studio.estimate_line import estimate_line, measure_line

    def update(lang: str, *values: Any) -> str:
        """(language, form values in FORM_FIELDS order) → the estimate's Markdown line."""
        return estimate_line(dict(zip(FORM_FIELDS, values, strict=True)), lang)

    def measure(lang: str, *values: Any) -> str:
        """(language, form values in FORM_FIELDS order) → the estimate line and the probe's measurements."""
        return measure_line(dict(zip(FORM_FIELDS, values, strict=True)), lang)

    inputs = [ctx["lang"], *(ctx[name] for name in FORM_FIELDS)]
    for name in (name for name in ESTIMATE_TRIGGERS if name in ctx.components):
        ctx[name].change(update, inputs, ctx["estimate_line"], api_visibility="private", trigger_mode="always_last")
    ctx["estimate_button"].click(measure, inputs, ctx["estimate_line"], api_visibility="private")


def initial_datasets(ctx: Context) -> list[tuple[str, str]]:
    """Datasets for the first render (a broken registry shows up when the user changes the stage)."""
    from studio.datasets import dataset_picker

    try:
        return dataset_picker(ctx.initial.get("dataset_dir", "data"), ctx.initial.get("stage", "sft"), ctx.lang)
    except Exception:  # noqa: BLE001 - the page must render; the registry error is shown on the next change
        return []


# The form's inputs, in the order handlers receive them: config keys plus the few composite widgets.
FORM_FIELDS = [
    "model_name", "model_path", "hub", "finetuning_type", "checkpoint", "quantization_bit", "quantization_method",
    "template", "rope_scaling", "booster",
    "stage", "dataset_dir", "dataset", "learning_rate", "num_train_epochs", "max_grad_norm", "max_samples",
    "compute_type", "cutoff_len", "per_device_train_batch_size", "gradient_accumulation_steps", "val_size",
    "lr_scheduler_type", "max_steps", "logging_steps", "save_steps", "warmup_steps", "neftune_noise_alpha", "report_to",
    "eval_strategy", "eval_steps", "early_stopping_patience", "load_best_model_at_end", "metric_for_best_model",
    "packing", "train_on_prompt", "mask_history", "resize_vocab", "extra_args",
    "lora_rank", "lora_alpha", "lora_dropout", "loraplus_lr_ratio", "create_new_adapter", "use_rslora", "use_dora",
    "pissa_init", "lora_target", "additional_target",
    "freeze_trainable_layers", "freeze_trainable_modules", "freeze_extra_modules",
    "pref_beta", "pref_ftx", "pref_loss", "simpo_gamma", "kto_chosen_weight", "kto_rejected_weight", "reward_model",
    "reward_funcs", "num_generations", "max_completion_length", "ppo_epochs",
    "use_galore", "galore_rank", "galore_update_interval", "galore_scale", "galore_target",
    "use_badam", "badam_mode", "badam_switch_mode", "badam_switch_interval", "badam_update_ratio",
    "identity_name", "identity_author", "devices", "cpu_processes", "strategy", "offload_optimizer",
    "offload_params", "run_name",
    "early_stopping_steps", "preserve_thinking", "new_special_tokens_config", "init_special_tokens",
    "oft_block_size", "oft_rank", "module_dropout", "oft_target", "use_llama_pro",
    "pref_bco_weight", "ld_alpha", "use_dft_loss", "use_asft_loss", "asft_alpha", "use_eaft_loss", "eaft_alpha",
    "use_muon", "use_adam_mini", "use_apollo", "apollo_rank", "apollo_update_interval", "apollo_scale",
    "apollo_target", "apollo_proj", "apollo_proj_type", "apollo_scale_type", "apollo_layerwise", "apollo_scale_front",
    "use_swanlab", "swanlab_mode", "swanlab_project", "swanlab_workspace", "swanlab_run_name", "ray_address",
    *MEDIA_KEYS,
]
