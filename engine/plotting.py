"""Curves from trainer_log.jsonl: smoothing (shared with the studio's live chart) and the `training_<metric>.png`
images a run leaves, under the names LLaMA-Factory gives them."""

from __future__ import annotations

import math
from pathlib import Path

from engine.runfolder import read_trainer_log


def smooth(values: list[float], weight: float | None = None) -> list[float]:
    """Exponential moving average, debiased; the weight grows with the number of points, as TensorBoard's does."""
    if not values:
        return []
    if weight is None:
        weight = 1.8 * (1 / (1 + math.exp(-0.05 * len(values))) - 0.5)
    smoothed, last = [], 0.0
    for i, value in enumerate(values, start=1):
        last = last * weight + (1 - weight) * value
        smoothed.append(last / (1 - weight**i) if weight > 0 else value)
    return smoothed


def loss_points(records: list[dict], key: str = "loss") -> tuple[list[int], list[float]]:
    """(steps, values) of one metric from trainer_log records, skipping lines without it."""
    steps, values = [], []
    for record in records:
        value = record.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            steps.append(int(record.get("current_steps", len(steps))))
            values.append(float(value))
    return steps, values


# The metrics each stage plots at the end of a run, as LLaMA-Factory's workflows choose them; others: DEFAULT_CURVES.
DEFAULT_CURVES = ("loss", "eval_loss", "eval_accuracy")
STAGE_CURVES = {"dpo": ("loss", "rewards/accuracies", "eval_loss"), "kto": ("loss", "rewards/chosen", "eval_loss"),
                "ppo": ("loss", "reward")}


def curve_file(key: str) -> str:
    """The image of one metric's curve, "/" read as "_": `training_loss.png`, `training_eval_loss.png`,
    `training_rewards_accuracies.png`."""
    return f"training_{key.replace('/', '_')}.png"


def plot_loss(run_dir: Path, stage: str | None = None) -> list[Path]:
    """Write `training_<metric>.png` (raw and smoothed) for each of the stage's metrics the log holds; the paths.

    The loss image also marks the evaluation losses, so one picture shows both curves.
    """
    records, _ = read_trainer_log(Path(run_dir))
    written = []
    for key in STAGE_CURVES.get(stage or "", DEFAULT_CURVES):
        steps, values = loss_points(records, key)
        if steps:
            extra = loss_points(records, "eval_loss") if key == "loss" else ([], [])
            written.append(_plot_curve(Path(run_dir), key, steps, values, extra))
    return written


def _plot_curve(run_dir: Path, key: str, steps: list[int], values: list[float],
                eval_points: tuple[list[int], list[float]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ax.plot(steps, values, color="#1f77b4", alpha=0.4, label=key)
    ax.plot(steps, smooth(values), color="#1f77b4", label="smoothed")
    if eval_points[0]:
        ax.plot(*eval_points, color="#d62728", marker="o", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.set_title(f"Training {key} of {run_dir.name}")
    ax.legend()
    fig.tight_layout()
    path = run_dir / curve_file(key)
    fig.savefig(path)
    plt.close(fig)
    return path
