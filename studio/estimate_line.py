"""The Train tab's resource estimate beside Start: one Markdown line of memory per device, and the measured probe.

The estimate is torch-free and reads at most one small JSON file, so for the demo model and registered hub models
(whose config.json, when downloaded, sits in the download cache) it runs in the studio's process. A model path the
user typed may name any file: that estimate runs in an engine child (`python -m engine estimate -`) with the pre-launch
checks' memory cap and a timeout, like every other read of a user-named file. "Measure" trains a few real steps in
an engine child (`--probe`) and reports peak memory, tokens/s and the projected run time; the public demo does not
offer it (it would be a training run outside the demo's budgets).

A run whose estimate does not fit its devices gets a warning in the line; Start still goes ahead, because the
estimate is approximate (it counts every sequence at cutoff_len) and the user may know better.
"""

from __future__ import annotations

from typing import Any

import yaml

from engine.config import config_from_dict
from engine.errors import StudioError
from engine.estimate import estimate_memory
from engine.model.demo import DEMO_MODEL_NAME
from engine.model.families.registry import find_model
from engine.preflight import MEMORY_ENV
from studio import capabilities, demo_mode, supervisor
from studio.config_builder import form_to_config
from studio.i18n import t
from studio.markup import escape_markdown, md_error
from studio.workspace import home

ESTIMATE_TIMEOUT = 30.0
PROBE_TIMEOUT = 600.0
PROBE_STEPS = 4
GIB = 1024**3


def size_text(num_bytes: float) -> str:
    """Bytes as people read memory sizes: `1.2 GB`, `350 MB`."""
    if num_bytes >= GIB:
        return f"{num_bytes / GIB:.1f} GB"
    return f"{num_bytes / 1024**2:.0f} MB"


def count_text(count: float) -> str:
    """A parameter count: `8.0B`, `1.3M`, `77.8K`."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(int(count))


def duration_text(seconds: float) -> str:
    """`H:MM:SS`, as the monitor writes times."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def machine(form: dict[str, Any]) -> tuple[int, float, bool]:
    """(devices the run uses, memory of one in bytes, whether they are GPUs), found without torch: the GPUs picked
    (none picked: all), each with its share of their memory; without GPUs, the CPU processes sharing the RAM."""
    total_gib, on_gpu = capabilities.training_memory()
    if on_gpu:
        visible = max(capabilities.device_count(), 1)
        return len(form.get("devices") or []) or visible, total_gib * GIB / visible, True
    processes = max(int(form.get("cpu_processes") or 1), 1)
    return processes, total_gib * GIB / processes, False


def reads_only_known_files(model: str) -> bool:
    """Whether the model's shape comes from the demo build or the registry (and the download cache), not from a
    path the user typed."""
    return model.strip() == DEMO_MODEL_NAME or find_model(model) is not None


def estimate_json(config: dict[str, Any], devices: int, memory: float, on_gpu: bool) -> dict[str, Any]:
    """The estimate of a flat config as `engine estimate` prints it (in-process when that reads no user path)."""
    model = str(config.get("model_name_or_path") or "")
    if reads_only_known_files(model):
        cfg = config_from_dict(config, source="the studio settings")
        try:
            estimate = estimate_memory(cfg, devices=devices, on_gpu=on_gpu, read_files=False)
        except ValueError:
            raise StudioError("estimate_unknown_model", model=model) from None
        return {"estimate": estimate.to_json(), "fits": estimate.total <= memory if memory else None}
    args = ["estimate", "-", "--devices", str(devices), *(["--memory-gb", str(memory / GIB)] if memory else []),
            *([] if on_gpu else ["--cpu"])]
    return supervisor.run_json_child(
        supervisor.engine_command(*args), stdin_text=yaml.safe_dump(config), timeout=ESTIMATE_TIMEOUT,
        cwd=home(), on_timeout=StudioError("estimate_timeout", seconds=int(ESTIMATE_TIMEOUT)),
        on_crash=lambda detail: StudioError("estimate_crashed", detail=detail))


def line_text(answer: dict[str, Any], devices: int, memory: float, lang: str) -> str:
    """The Markdown line of an estimate answer, with the warning when it does not fit."""
    e = answer["estimate"]
    text = t("train.estimate.line", lang, total=size_text(e["total"]), weights=size_text(e["weights"]),
             gradients=size_text(e["gradients"]), optimizer=size_text(e["optimizer"]),
             activations=size_text(e["activations"]), runtime=size_text(e["runtime"]),
             trainable=count_text(e["trainable_params"]), params=count_text(e["params"]))
    if e.get("approximate"):
        text += " " + t("train.estimate.approximate", lang)
    if answer.get("fits") is False:
        key = "train.estimate.no_fit_gpu" if e.get("on_gpu") else "train.estimate.no_fit_cpu"
        text += "  \n⚠️ " + t(key, lang, memory=size_text(memory), devices=devices)
    return text


def form_config(form: dict[str, Any]) -> dict[str, Any]:
    """The Train form's values by name → the flat engine config the estimate and the probe read: Start's own mapping
    (`studio.config_builder.form_to_config`), without a run folder or the adapters to continue from."""
    return form_to_config(form)


def estimate_line(form: dict[str, Any], lang: str) -> str:
    """Form values by name → the Markdown line "Estimate: ~X GB per device (…) · N trainable of M parameters"."""
    try:
        config = form_config(form)
        devices, memory, on_gpu = machine(form)
        return line_text(estimate_json(config, devices, memory, on_gpu), devices, memory, lang)
    except StudioError as err:
        return t("train.estimate.unavailable", lang, reason=md_error(err, lang))


def measure_line(form: dict[str, Any], lang: str) -> str:
    """Form values by name → the estimate line plus the probe's peak memory, tokens/s and projected time."""
    if demo_mode.active() is not None:
        return t("train.estimate.measure_demo", lang)
    try:
        config = form_config(form)
        devices, memory, on_gpu = machine(form)
        args = ["estimate", "-", "--probe", "--steps", str(PROBE_STEPS), "--devices", str(devices),
                *(["--memory-gb", str(memory / GIB)] if memory else []), *([] if on_gpu else ["--cpu"])]
        answer = supervisor.run_json_child(
            supervisor.engine_command(*args), stdin_text=yaml.safe_dump(config), timeout=PROBE_TIMEOUT,
            cwd=home(), env={MEMORY_ENV: ""},
            on_timeout=StudioError("estimate_timeout", seconds=int(PROBE_TIMEOUT)),
            on_crash=lambda detail: StudioError("estimate_crashed", detail=detail))
    except StudioError as err:
        return t("train.estimate.unavailable", lang, reason=md_error(err, lang))
    return line_text(answer, devices, memory, lang) + "  \n" + probe_text(answer["probe"], lang)


def probe_text(probe: dict[str, Any], lang: str) -> str:
    """The measured line: peak memory (GPU allocated, or the growth of the process's RAM), tokens/s, time."""
    peak = probe.get("peak_gpu_bytes") or probe["rss_growth_bytes"]
    tokens = probe.get("tokens_per_second")
    return t("train.estimate.measured", lang, steps=probe["steps"], peak=size_text(peak),
             tokens=escape_markdown(f"{tokens:,.0f}" if tokens else "?"),
             time=duration_text(probe["projected_seconds"]), total_steps=probe["total_steps"])

