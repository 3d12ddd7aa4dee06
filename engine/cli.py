"""The `studio` command line: train, demo-model, and the commands of the other tabs (chat, api, eval, export, launch).

Config mistakes are found by the torch-free config code and answered in about a second, without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import warnings
from typing import Any

from engine.errors import StudioError

COMMANDS_LATER = {
}

USAGE = """usage: studio <command> [options]

commands:
  train CONFIG.yaml [key=value ...]   train a model (pt, sft) into its run folder
  eval CONFIG.yaml [key=value ...] [--predict]
                                      score a benchmark (task: mmlu_test, studio_bench_test, ...), or with
                                      --predict generate for the eval rows and score BLEU/ROUGE
  judge CONFIG.yaml [key=value ...]   score predictions with a judge model at an OpenAI-compatible endpoint
                                      (judge_predictions, judge_base_url, judge_model, judge_rubric, ...)
  demo-model [DIR] [--force] [--vision | --audio]
                                      build the offline demo model (--vision: the image/video one, --audio:
                                      the one that hears) and print its folder
  expand-model --model_name_or_path M --output_dir D --num_expand N
                                      add N identity blocks to a model for LLaMA Pro (use_llama_pro) training
  launch [--host] [--port] [--auth]    open the web studio (see `studio launch --help`)
  api CONFIG.yaml [key=value ...]     serve the model over an OpenAI-compatible API (api_host, api_port, api_key)
  chat CONFIG.yaml [key=value ...]    chat with the model in the terminal (`clear` resets, `exit` quits)
  export CONFIG.yaml [key=value ...]  merge adapters and export (export_dir; GPTQ, GGUF + Ollama, hub upload)
  check train|eval|export|judge CONFIG.yaml
                                      run a job's pre-launch checks (data read, rows counted); prints JSON
  estimate CONFIG.yaml [--probe]       memory per device of a training config; --probe measures a few steps
  version                              print the version

Add --debug to any command to see a Python traceback for errors."""


def setup_logging() -> None:
    """One line per message, on stderr (the studio's runner sends stderr to running_log.txt)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "urllib3", "filelock", "huggingface_hub", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Deprecation notices from inside transformers/peft say nothing a user can act on.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft|torch)\.")
    # bitsandbytes warns at import about an optional GPU-kernel package even when nothing is quantized.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


def wants_torchrun() -> bool:
    """Re-launch under torchrun when several devices are visible or FORCE_TORCHRUN=1 (not when already a rank)."""
    if "LOCAL_RANK" in os.environ:
        return False
    if os.environ.get("FORCE_TORCHRUN", "0").lower() in ("1", "true"):
        return True
    import torch

    return torch.cuda.is_available() and torch.cuda.device_count() > 1


def torchrun_command(config_path: str | None, overrides: list[str]) -> list[str]:
    """The torchrun argument list for this training command (NNODES, NODE_RANK, NPROC_PER_NODE, MASTER_* honoured)."""
    import torch

    nproc = os.environ.get("NPROC_PER_NODE") or str(max(torch.cuda.device_count(), 1))
    runner = shutil.which("torchrun")
    base = [runner] if runner else [sys.executable, "-m", "torch.distributed.run"]
    return [*base, "--nnodes", os.environ.get("NNODES", "1"), "--node_rank", os.environ.get("NODE_RANK", "0"),
            "--nproc_per_node", nproc, "--master_addr", os.environ.get("MASTER_ADDR", "127.0.0.1"),
            "--master_port", os.environ.get("MASTER_PORT", "29500"),
            "-m", "engine", "train", *([config_path] if config_path else []), *overrides]


def command_train(args: argparse.Namespace) -> int:
    """Validate the config, then train in this process, under torchrun, or on Ray's workers (USE_RAY=1)."""
    from engine.config import load_config
    from engine.validation import validate_config

    config = validate_config(load_config(args.config, args.overrides), "train")
    from engine.train.ray_train import run_ray_training, wants_ray

    if wants_ray():  # USE_RAY=1: Ray Train starts the workers, here or on a cluster
        return run_ray_training(config)
    if wants_torchrun():
        from engine.train.run import default_output_dir
        from engine.train.trainer_setup import check_fsdp

        check_fsdp(config)  # once here, rather than once in each rank

        # Every rank must write to the same folder: fix the timestamped default once, here.
        output_dir = config.training.output_dir or default_output_dir(config)
        command = torchrun_command(args.config, [*args.overrides, f"output_dir={output_dir}"])
        logging.getLogger("engine").info("Launching %s", " ".join(command))
        env = {**os.environ, "FORCE_TORCHRUN": "0"}
        return subprocess.call(command, env=env)
    from engine.train.run import run_training

    return run_training(config)


def command_demo_model(args: argparse.Namespace) -> int:
    """Build (or find) the offline demo model (the vision one with --vision, the audio one with --audio) and print
    its folder."""
    if args.vision:
        from engine.multimodal.demo_vision import main as demo_main
    elif args.audio:
        from engine.multimodal.demo_audio import main as demo_main
    else:
        from engine.model.demo import main as demo_main

    return demo_main([*([args.dir] if args.dir else []), *(["--force"] if args.force else [])])


def command_expand_model(args: argparse.Namespace) -> int:
    """Save the model with `num_expand` identity blocks added (LLaMA Pro) and print the folder and how to train it."""
    from engine.model.block_expansion import expand_model

    out = expand_model(args.model_name_or_path, args.output_dir, args.num_expand,
                       trust_remote_code=args.trust_remote_code)
    print(out)
    print(f"Train only the new blocks with: model_name_or_path={out} finetuning_type=freeze "
          f"freeze_trainable_layers={args.num_expand} use_llama_pro=true", file=sys.stderr)
    return 0


def command_eval(args: argparse.Namespace) -> int:
    """Check the eval config, then run the benchmark or the prediction in this process."""
    from engine.config import load_config
    from engine.eval import check_eval_config
    from engine.eval.run import run_eval

    predict = args.predict or None  # without --predict, do_predict in the config decides
    return run_eval(check_eval_config(load_config(args.config, args.overrides), predict), predict)


def command_judge(args: argparse.Namespace) -> int:
    """Check the judge config, then score the predictions at the judge endpoint into the job's run folder."""
    from engine.config import load_config
    from engine.eval.judge import run_judge

    return run_judge(load_config(args.config, args.overrides))


def command_api(args: argparse.Namespace) -> int:
    """Serve the model over the OpenAI-compatible API until interrupted."""
    from engine.inference.commands import run_api

    return run_api(args.config, args.overrides)


def command_chat(args: argparse.Namespace) -> int:
    """Chat with the model in the terminal."""
    from engine.inference.commands import run_chat

    return run_chat(args.config, args.overrides)


def command_export(args: argparse.Namespace) -> int:
    """Check the export config, then merge, convert and upload into `export_dir` (its run folder)."""
    from engine.config import load_config
    from engine.export import run_export

    _split_config_arg(args)
    return run_export(load_config(args.config, args.overrides))


def command_check(args: argparse.Namespace) -> int:
    """Run a job's pre-launch checks and print the outcome as one JSON line (what the studio runs before a job)."""
    from engine.preflight import main as check_main

    return check_main(args.job, args.config, args.overrides)


def command_estimate(args: argparse.Namespace) -> int:
    """Estimate the memory a training config needs per device (and measure a few steps with --probe); one JSON line."""
    from engine.probe import main as estimate_main

    return estimate_main(args.config, args.overrides, probe=args.probe, steps=args.steps, devices=args.devices,
                         memory_gb=args.memory_gb, cpu=args.cpu)


def config_command(sub: Any, name: str, what: str, description: str) -> argparse.ArgumentParser:
    """A sub-command that takes a YAML config, key=value overrides and --debug."""
    command = sub.add_parser(name, help=what, description=description)
    command.add_argument("config", nargs="?", help="YAML config file (omit to give everything as key=value)")
    command.add_argument("overrides", nargs="*", help="key=value settings that override the file")
    command.add_argument("--debug", action="store_true", help="show tracebacks")
    return command


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per task."""
    parser = argparse.ArgumentParser(prog="studio", usage=USAGE.removeprefix("usage: "), add_help=True)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command")
    config_command(sub, "train", "train a model", "Train from a YAML config.")
    evaluate = config_command(sub, "eval", "benchmark or predict",
                              "Score a multiple-choice benchmark, or predict with --predict.")
    evaluate.add_argument("--predict", action="store_true", help="generate for the eval rows (do_predict)")
    config_command(sub, "judge", "score predictions with a judge model",
                   "Score generated_predictions.jsonl with a judge model behind an OpenAI-compatible endpoint.")
    demo = sub.add_parser("demo-model", help="build the offline demo model")
    demo.add_argument("dir", nargs="?", help="target folder (default: saves/models/demo)")
    demo.add_argument("--force", action="store_true", help="rebuild even when an identical build exists")
    kind = demo.add_mutually_exclusive_group()
    kind.add_argument("--vision", action="store_true",
                      help="build the vision demo (demo-vision: a tiny Qwen2-VL, default saves/models/demo-vision)")
    kind.add_argument("--audio", action="store_true",
                      help="build the audio demo (demo-audio: a tiny Qwen2-Audio, default saves/models/demo-audio)")
    demo.add_argument("--debug", action="store_true", help="show tracebacks")
    expand = sub.add_parser("expand-model", help="add identity blocks for LLaMA Pro training",
                            description="Insert N decoder blocks that leave the output unchanged (copies of the "
                            "block before each, output projections zeroed), spread evenly; train them with "
                            "use_llama_pro: true.")
    expand.add_argument("--model_name_or_path", required=True, help="the model to expand (`demo`, a folder or a "
                        "Hub id)")
    expand.add_argument("--output_dir", required=True, help="the folder to write (must be new or empty)")
    expand.add_argument("--num_expand", type=int, required=True, help="blocks to add (must divide the layer count)")
    expand.add_argument("--trust_remote_code", action="store_true", help="run the model repository's own code")
    expand.add_argument("--debug", action="store_true", help="show tracebacks")
    sub.add_parser("version", help="print the version")
    check = sub.add_parser("check", help="a job's pre-launch checks, as JSON",
                           description="Check a train, eval or export config and its data; print one JSON line.")
    check.add_argument("job", choices=["train", "eval", "export", "judge"])
    check.add_argument("config", help="YAML config file")
    check.add_argument("overrides", nargs="*", help="key=value settings that override the file")
    check.add_argument("--debug", action="store_true", help="show tracebacks")
    estimate = sub.add_parser("estimate", help="memory estimate of a training config, as JSON",
                              description="Estimate weights, gradients, optimizer and activation memory per device; "
                              "--probe also trains a few steps and measures peak memory, tokens/s and run time.")
    estimate.add_argument("config", help="YAML config file (`-`: read it from stdin)")
    estimate.add_argument("overrides", nargs="*", help="key=value settings that override the file")
    estimate.add_argument("--probe", action="store_true", help="train a few real steps and measure them")
    estimate.add_argument("--steps", type=int, default=4, help="steps the probe trains (default 4)")
    estimate.add_argument("--devices", type=int, default=1, help="devices the run uses (default 1)")
    estimate.add_argument("--memory-gb", type=float, default=None, help="memory of one device, to say if it fits")
    estimate.add_argument("--cpu", action="store_true", help="estimate for the CPU even when a GPU is visible")
    estimate.add_argument("--debug", action="store_true", help="show tracebacks")
    for name, what in (("api", "serve the model over an OpenAI-compatible API"), ("chat", "chat in the terminal")):
        config_command(sub, name, what, what.capitalize() + ", from a YAML config.")
    config_command(sub, "export", "export merged weights, GPTQ, GGUF and Ollama",
                   "Export the model (base + adapters) into export_dir.")
    for name, what in COMMANDS_LATER.items():
        later = sub.add_parser(name, help=what)
        later.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _split_config_arg(args: argparse.Namespace) -> None:
    # `studio train key=value ...` without a file: the first positional is an override, not a path.
    if args.config and "=" in args.config and not args.config.endswith((".yaml", ".yml")):
        args.overrides.insert(0, args.config)
        args.config = None


def main(argv: list[str] | None = None) -> int:
    """Entry point of `studio` and `python -m engine`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:
        print(USAGE)
        return 0
    args, unknown = parser.parse_known_args(argv)
    debug = getattr(args, "debug", False) or "--debug" in argv
    if unknown:
        if args.command in ("train", "api", "chat", "eval", "judge"):
            args.overrides += [u for u in unknown if u != "--debug"]
        else:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    setup_logging()
    handlers: dict[str, Any] = {"train": command_train, "demo-model": command_demo_model,
                                "expand-model": command_expand_model, "api": command_api,
                                "chat": command_chat, "eval": command_eval, "export": command_export,
                                "check": command_check, "estimate": command_estimate,
                                "judge": command_judge}
    try:
        if args.command == "version":
            from engine import __version__

            print(__version__)
            return 0
        if args.command in COMMANDS_LATER:
            print(f"`studio {args.command}` ({COMMANDS_LATER[args.command]}) is not available in this version yet.",
                  file=sys.stderr)
            return 2
        if args.command in ("train", "api", "chat", "eval", "judge"):
            _split_config_arg(args)
        return handlers[args.command](args)
    except StudioError as err:
        if debug:
            raise
        print(f"error: {err.message(os.environ.get('STUDIO_LANG', 'en'))}", file=sys.stderr)
        return 1
