"""Export: merged weights (safetensors or .bin shards), GPTQ, GGUF with an Ollama Modelfile, a model card, a
Hub upload, and a parity check of the exported model against the original.

`run_export(config)` runs one export into `export_dir` as a run folder (status.json, trainer_log.jsonl progress
lines with `step_name`, running_log.txt, a lock); `check_export(config)` is its torch-free validation, for the
studio to call before launching `python -m engine export <config.yaml>`.
"""

from engine.export.run import RESULTS_FILE, check_export, plan_steps, run_export

__all__ = ["RESULTS_FILE", "check_export", "plan_steps", "run_export"]
