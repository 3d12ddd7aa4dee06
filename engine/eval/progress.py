"""Progress of an evaluation or prediction as trainer_log.jsonl lines, so the studio's monitor shows it live."""

from __future__ import annotations

import time
from pathlib import Path

from engine.runfolder import TrainerLogWriter
from engine.train.callbacks import format_duration


class ProgressLog:
    """Appends `{current_steps, total_steps, percentage, elapsed_time, remaining_time, stage}` after each batch.

    `current_steps` counts batches done; `stage` is `eval` (benchmark) or `predict`. With `enabled=False` (a
    prediction after training, whose log holds the training curve) nothing is written.
    """

    def __init__(self, run_dir: Path, total: int, *, stage: str, enabled: bool = True) -> None:
        self.writer = TrainerLogWriter(run_dir) if enabled else None
        self.total, self.stage, self.done = max(total, 0), stage, 0
        self.start = time.monotonic()

    def advance(self) -> None:
        """One more batch done."""
        self.done += 1
        if self.writer is None:
            return
        elapsed = time.monotonic() - self.start
        remaining = elapsed / self.done * max(self.total - self.done, 0)
        self.writer.write({
            "current_steps": self.done,
            "total_steps": self.total,
            "percentage": round(self.done / self.total * 100, 2) if self.total else 100.0,
            "elapsed_time": format_duration(elapsed),
            "remaining_time": format_duration(remaining),
            "stage": self.stage,
        })
