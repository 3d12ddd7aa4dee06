"""Loss curves from trainer_log.jsonl: smoothing (shared with the studio's live chart) and loss.png."""

from __future__ import annotations

import math
from pathlib import Path


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


def plot_loss(run_dir: Path) -> Path | None:
    """Write loss.png (raw, smoothed, and eval loss when logged); None when nothing was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from engine.runfolder import read_trainer_log

    records, _ = read_trainer_log(Path(run_dir))
    steps, losses = loss_points(records)
    if not steps:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ax.plot(steps, losses, color="#1f77b4", alpha=0.4, label="loss")
    ax.plot(steps, smooth(losses), color="#1f77b4", label="smoothed")
    eval_steps, eval_losses = loss_points(records, "eval_loss")
    if eval_steps:
        ax.plot(eval_steps, eval_losses, color="#d62728", marker="o", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(f"Training loss of {Path(run_dir).name}")
    ax.legend()
    fig.tight_layout()
    path = Path(run_dir) / "loss.png"
    fig.savefig(path)
    plt.close(fig)
    return path
