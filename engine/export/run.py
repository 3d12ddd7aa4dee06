"""One export from start to final status, in `export_dir` as its run folder (status, progress lines, lock).

Steps, each announced by a progress line in trainer_log.jsonl (`current_steps` done of `total_steps`,
`percentage`, `elapsed_time`, `remaining_time`, and `step_name`, the step now running; the last line says
`done`): load → reference (the original's answers for the parity check) → merge (or merge + quantize for GPTQ)
→ gguf → ollama (a Modelfile beside every export but GPTQ's) → parity → card → upload. `check_export` runs first
and needs no torch, so the studio can call it before launching `python -m engine export <config.yaml>`.
"""

from __future__ import annotations

import gc
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from engine.atomic_write import write_text_atomic
from engine.config import RunConfig
from engine.errors import ConfigError
from engine.jobs import Job, StopSignal, progress_line, run_job
from engine.runfolder import CONFIG_FILE, LOCK_FILE, RUNNING_LOG, STATUS_FILE, TrainerLogWriter, read_status
from engine.validation import validate_config

logger = logging.getLogger("engine")

RESULTS_FILE = "export_results.json"
RUNNER_FILES = {CONFIG_FILE, RUNNING_LOG, LOCK_FILE, STATUS_FILE}
TASK = "export"


def plan_steps(config: RunConfig) -> list[str]:
    """The names of the steps this export will run, in order."""
    steps = ["load"]
    if config.export.export_parity:
        steps.append("reference")
    steps.append("merge")
    if config.model.export_quantization_bit is not None:
        steps.append("quantize")
    if config.export.export_gguf != "none":
        steps.append("gguf")
    if config.export.export_ollama and config.model.export_quantization_bit is None:  # Ollama cannot import GPTQ
        steps.append("ollama")
    if config.export.export_parity:
        steps.append("parity")
    steps.append("card")
    if config.model.export_hub_model_id:
        steps.append("upload")
    return steps


def folder_content(folder: Path) -> list[str]:
    """Names in `folder` other than the run-folder bookkeeping files (config, log, lock, status)."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name not in RUNNER_FILES)


def is_previous_export(folder: Path) -> bool:
    """Whether `folder` holds an earlier export (its status.json names the export task)."""
    return read_status(folder, reconcile=False).get("task") == TASK


def check_export(config: RunConfig) -> None:
    """Every check that needs no model: settings, their combinations, and the export folder (torch-free)."""
    from engine.export.hub import hub_token

    validate_config(config, "export")
    model, export = config.model, config.export
    if not model.export_dir:
        raise ConfigError("export_no_dir")
    if model.quantization_bit is not None:
        raise ConfigError("export_quantized_base", bits=model.quantization_bit)
    if model.export_quantization_bit is not None:
        if export.export_gguf != "none":
            raise ConfigError("export_gptq_and_gguf", gguf=export.export_gguf)
        if not model.export_quantization_dataset:
            raise ConfigError("export_gptq_needs_dataset")
    if model.export_hub_model_id:
        hub_token(config)
    folder = Path(model.export_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ConfigError("export_dir_is_file", path=str(folder))
    content = folder_content(folder)
    if content and not is_previous_export(folder):
        raise ConfigError("export_dir_not_empty", path=str(folder), files=", ".join(content[:3]))
    if content and not config.training.overwrite_output_dir:
        raise ConfigError("export_dir_has_export", path=str(folder))


class ExportProgress:
    """Progress lines in trainer_log.jsonl: before each step, and `done` at the end."""

    def __init__(self, run_dir: Path, steps: list[str]) -> None:
        self.writer, self.steps, self.start, self.done = TrainerLogWriter(run_dir), steps, time.monotonic(), 0

    def begin(self, name: str) -> None:
        """Record that step `name` starts (every earlier step is done)."""
        self.done = self.steps.index(name)
        self._write(name)
        logger.info("Export step %d/%d: %s", self.done + 1, len(self.steps), name)

    def finish(self) -> None:
        """Record that every step is done."""
        self.done = len(self.steps)
        self._write("done")

    def _write(self, name: str) -> None:
        line = progress_line(self.done, len(self.steps), time.monotonic() - self.start)
        self.writer.write({**line, "step_name": name})


def export_model(config: RunConfig, run_dir: Path, progress: ExportProgress,
                 max_shard_size: int | None = None) -> dict[str, Any]:
    """Run the export steps into `run_dir`; returns what export_results.json records."""
    from engine.export import merge, parity

    steps = progress.steps
    if "quantize" in steps:
        from engine.export.gptq import check_gptq_available

        check_gptq_available()  # before any time goes into loading and merging
    progress.begin("load")
    source = merge.load_source(config)
    results: dict[str, Any] = {"template": source.template.name, "dtype": str(source.dtype).replace("torch.", "")}
    reference = None
    if "reference" in steps:
        progress.begin("reference")
        reference = parity.greedy_answers(source.model, source.tokenizer, source.template)
    progress.begin("merge")
    source.model = merge.merge_adapters(source.model)
    if "quantize" in steps:
        results["files"] = _merge_and_quantize(config, run_dir, source, progress)
    else:
        results["files"] = merge.save_merged(source, run_dir, config, max_shard_size)
    if "gguf" in steps:
        results.update(_write_gguf(config, run_dir, source, progress))
    if "ollama" in steps:
        results["modelfile"] = _write_modelfile(run_dir, results.get("gguf"), source, progress)
    tokenizer, template, dtype = source.tokenizer, source.template, source.dtype
    del source.model
    gc.collect()
    report = None
    if "parity" in steps:
        progress.begin("parity")
        exported = parity.load_exported(run_dir, None if "quantize" in steps else dtype)
        report = parity.compare(reference or [], parity.greedy_answers(exported, tokenizer, template), tokenizer)
        parity.write_parity(run_dir, report)
        results["parity"] = {k: report[k] for k in ("all_match", "matched", "total")}
        del exported
    _write_card(config, run_dir, results, source.run_dir, report, progress)
    if "upload" in steps:
        from engine.export.hub import upload_to_hub

        progress.begin("upload")
        results["hub_url"] = upload_to_hub(run_dir, config)
    return results


def _merge_and_quantize(config: RunConfig, run_dir: Path, source: Any, progress: ExportProgress) -> list[str]:
    from engine.export import merge
    from engine.export.gptq import quantize_gptq

    merged_dir = run_dir / ".merged"
    merge.save_merged(source, merged_dir, config)
    progress.begin("quantize")
    files = quantize_gptq(merged_dir, run_dir, config, source.tokenizer)
    for path in merged_dir.iterdir():  # tokenizer, chat template, studio_model.json: the quantized save has weights
        weights = path.suffix in (".safetensors", ".bin") or path.name.endswith(".index.json")
        if not weights and not (run_dir / path.name).exists():
            shutil.copy2(path, run_dir / path.name)
    shutil.rmtree(merged_dir)
    return files


def _write_gguf(config: RunConfig, run_dir: Path, source: Any, progress: ExportProgress) -> dict[str, Any]:
    from engine.export.gguf import gguf_file_name, write_gguf

    outtype = config.export.export_gguf
    progress.begin("gguf")
    name = gguf_file_name(outtype)
    write_gguf(source.model, source.tokenizer, source.template, run_dir / name, outtype,
               name=Path(config.model.export_dir or "model").name)
    return {"gguf": name}


def _write_modelfile(run_dir: Path, gguf_name: str | None, source: Any, progress: ExportProgress) -> str:
    """The Ollama Modelfile, for the GGUF file when there is one, else for the folder's safetensors weights."""
    from engine.export.gguf_vocab import adds_bos
    from engine.export.ollama import write_modelfile

    progress.begin("ollama")
    return write_modelfile(run_dir, gguf_name, source.template, source.tokenizer,
                           add_bos=adds_bos(source.tokenizer)).name


def _write_card(config: RunConfig, run_dir: Path, results: dict[str, Any], source_run: Path | None,
                report: dict[str, Any] | None, progress: ExportProgress) -> None:
    from engine.export.hub import model_card, write_model_card

    progress.begin("card")
    files = [*results["files"], *[results[k] for k in ("gguf", "modelfile") if k in results]]
    text = model_card(config, results["template"], files, source_run, report, dtype=results["dtype"])
    write_model_card(run_dir, text)


def _clear_previous(run_dir: Path) -> None:
    """Remove an earlier export's files (run-folder bookkeeping files stay)."""
    for name in folder_content(run_dir):
        path = run_dir / name
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def run_export(config: RunConfig, *, max_shard_size: int | None = None) -> int:
    """Run one export into `export_dir` and leave a final status; returns the process exit code."""
    check_export(config)
    run_dir = Path(str(config.model.export_dir)).expanduser()
    # check_export allowed a non-empty folder only when it holds an earlier export and overwrite was asked.
    # The steps cannot pause, so the studio's abort (SIGTERM) stops at once and the export ends as `aborted`.
    job = Job(TASK, run_dir, config, stop=StopSignal(immediate=True),
              clear=_clear_previous if folder_content(run_dir) else None,
              interrupted="Export stopped before it finished.")

    def body() -> None:
        progress = ExportProgress(run_dir, plan_steps(config))
        logger.info("Exporting %s into %s: %s", config.model.model_name_or_path, run_dir, ", ".join(progress.steps))
        results = export_model(config, run_dir, progress, max_shard_size)
        progress.finish()
        write_text_atomic(run_dir / RESULTS_FILE, json.dumps(results, ensure_ascii=False, indent=2) + "\n")
        logger.info("Export finished: %s", run_dir)

    return run_job(job, body)
