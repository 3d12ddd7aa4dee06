"""Run LLaMA-Factory's own example configs with this engine, as a user moving in would, and report each outcome.

    pip download llamafactory==0.9.5 --no-deps --no-binary :all: && tar xzf llamafactory-0.9.5.tar.gz
    python scripts/try_llamafactory_examples.py llamafactory-0.9.5 [--only train_lora] [--model DIR]

Each config runs from the unpacked source folder (so `dataset_dir: data` is LLaMA-Factory's stock `data/`),
changed only where a CPU machine without the hub needs it: the model (the offline demo model), the output folders
(moved under a temporary folder, names kept), the step count and bf16. Training runs two steps; exports write into a temporary folder; inference configs answer
one chat turn. An example passes when it finishes, or when it stops before loading anything with a message that
names what is missing (a GPU, a package, a feature this studio does not build). A traceback is a failure.
Nothing here is copied from LLaMA-Factory: the script only reads its files.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("train_lora", "train_full", "train_qlora", "extras", "merge_lora", "inference")


def example_files(source: Path, only: str | None) -> list[Path]:
    """The YAML run configs under the example folders (a file that is not a config mapping is left out)."""
    files = []
    for folder in FOLDERS:
        if only and folder != only:
            continue
        for path in sorted((source / "examples" / folder).rglob("*.yaml")):
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and "model_name_or_path" in data:
                files.append(path)
    return files


def moved(value: str, root: Path) -> str:
    """A relative output folder of an example, moved under `root` (absolute ones stay)."""
    return value if Path(value).is_absolute() else str(root / value)


def command_for(path: Path, model: str, root: Path) -> tuple[list[str], str | None]:
    """The engine command line for one example, and the text fed to its standard input.

    Output folders keep their names under `root`, so an example that loads the adapter an earlier one trained
    (`adapter_name_or_path: saves/...`, as LLaMA-Factory's merge and inference examples do) finds it there.
    """
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    changes = [f"model_name_or_path={model}"]
    adapters = [a.strip() for a in str(data.get("adapter_name_or_path") or "").split(",") if a.strip()]
    if adapters:
        changes.append("adapter_name_or_path=" + ",".join(moved(a, root) for a in adapters))
    engine = [sys.executable, "-m", "engine"]
    if "export_dir" in data:
        return [*engine, "export", str(path), *changes, f"export_dir={moved(data['export_dir'], root)}"], None
    if "stage" in data:
        changes += [f"output_dir={moved(data.get('output_dir') or path.stem, root)}", "bf16=false"]
        if data.get("do_train", "do_predict" not in data):
            changes.append("max_steps=2")
        if data.get("pure_bf16"):
            changes.append("pure_bf16=false")
        return [*engine, "train", str(path), *changes], None
    return [*engine, "chat", str(path), *changes, "max_new_tokens=16"], "Hello\nexit\n"


def classify(returncode: int, output: str) -> str:
    """passed, refused (a clear message, no traceback) or failed."""
    if "Traceback (most recent call last)" in output:
        return "failed"
    return "passed" if returncode == 0 else "refused"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the unpacked LLaMA-Factory source folder")
    parser.add_argument("--only", choices=FOLDERS, help="one example folder")
    parser.add_argument("--model", default="demo", help="model to substitute (default: the offline demo model)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per example")
    args = parser.parse_args()
    failures = 0
    with tempfile.TemporaryDirectory(prefix="lf-examples-") as tmp:
        for path in example_files(args.source.resolve(), args.only):
            command, stdin = command_for(path, args.model, Path(tmp))
            result = subprocess.run(command, cwd=args.source, input=stdin, capture_output=True, text=True,
                                    timeout=args.timeout, env={**_env(), "PYTHONPATH": str(ROOT)})
            output = result.stdout + result.stderr
            outcome = classify(result.returncode, output)
            failures += outcome == "failed"
            last = next((line for line in reversed(output.strip().splitlines()) if line.strip()), "")
            print(f"{outcome:8} {path.relative_to(args.source / 'examples')}: {last[:300]}", flush=True)
    return 1 if failures else 0


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


if __name__ == "__main__":
    sys.exit(main())
