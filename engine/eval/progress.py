"""Progress of an evaluation or prediction as trainer_log.jsonl lines, so the studio's monitor shows it live."""

from __future__ import annotations

import time
from pathlib import Path

from engine.jobs import progress_line
from engine.runfolder import TrainerLogWriter


class ProgressLog:
    """Appends `{current_steps, total_steps, percentage, elapsed_time, remaining_time, stage}` after each batch.

    `current_steps` counts batches done; `stage` is `eval` (benchmark) or `predict`. With `enabled=False` (a
    prediction after training, whose log holds the training curve) nothing is written. A benchmark learns its
    batches as lm-eval asks for them (`grow`), and may need fewer than planned (lm-eval shares a context between
    the answers to one question), so `settle` marks the end at 100%.
    """

    def __init__(self, run_dir: Path, total: int, *, stage: str, enabled: bool = True) -> None:
        self.writer = TrainerLogWriter(run_dir) if enabled else None
        self.total, self.stage, self.done = max(total, 0), stage, 0
        self.start = time.monotonic()

    def grow(self, batches: int) -> None:
        """More batches are planned."""
        self.total += max(batches, 0)

    def advance(self) -> None:
        """One more batch done."""
        self.done = min(self.done + 1, self.total) if self.total else self.done + 1
        self.write()

    def settle(self) -> None:
        """Everything planned is done: a last line at 100%."""
        self.done = max(self.done, self.total)
        self.write()

    def write(self) -> None:
        if self.writer is None:
            return
        line = progress_line(self.done, self.total, time.monotonic() - self.start)
        if not self.total:
            line["percentage"] = 100.0  # nothing to do is all done
        self.writer.write({**line, "stage": self.stage})
