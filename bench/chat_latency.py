"""Chat latency: time to first token and tokens/s through the API server, against `model.generate` in-process.

Ours: `python -m engine api CONFIG` (the server the Chat tab starts) on the offline demo model, built into a
temporary folder; a streamed `POST /v1/chat/completions` (greedy, `max_tokens` fixed) read with httpx. Time to
first token (TTFT) is the time from sending the request to the first chunk carrying text; tokens/s is the
completion's token count (the usage the server reports) over the time from sending the request to its last chunk.

Baseline: the same model loaded in this process, the same prompt ids (rendered by the server's own code path),
the same stop tokens and `max_new_tokens`, greedy: plain `model.generate` in a thread feeding a
`TextIteratorStreamer`, timed the same way. The server adds HTTP, JSON and a process boundary, nothing else.

Prompts come from the shipped identity and alpaca_en_demo data; each is asked of both, interleaved (which side
goes first alternates), after one untimed warm-up of each. Reported: TTFT and tokens/s medians for
both, their difference and ratio, and the peak resident memory of the server process and of this process.
The random-weight demo model may end a reply before `max_tokens`; the server has no option to ignore the end
of turn, so what it generates is counted (both sides generate the same tokens: greedy, same stops).

Target: server TTFT within +50 ms of the in-process median, and server tokens/s at least 0.8x in-process.

    .venv/bin/python bench/chat_latency.py [--prompts N] [--repeats N] [--max-tokens N] [--quick] [--results-dir DIR]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import (
    REPO_ROOT,
    parser,
    peak_rss_mib,
    print_table,
    stop_process_group,
    summarize,
    tree_rss_mib,
    write_result,
)

sys.path.insert(0, str(REPO_ROOT))

TTFT_TARGET_S = 0.050
TOKENS_RATIO_TARGET = 0.8
READY_TIMEOUT_S = 180.0
MODEL_NAME = "bench-demo"


def load_prompts(count: int) -> list[str]:
    """User messages from the shipped identity and alpaca_en_demo data, alternating (placeholders filled)."""
    from engine.paths import resource_dir

    data = resource_dir("data")
    identity = json.loads((data / "identity.json").read_text(encoding="utf-8"))
    alpaca = json.loads((data / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    texts = []
    for pair in zip(alpaca, identity, strict=False):  # as many pairs as the shorter file has
        for row in pair:
            texts.append("\n".join(filter(None, [row["instruction"], row.get("input", "")])))
    return [text.replace("{{name}}", "Studio").replace("{{author}}", "the team") for text in texts[:count]]


def write_config(folder: Path, model_dir: Path) -> Path:
    """The inference config both sides load: the demo model, its template, a free loopback port."""
    import yaml

    config = {"model_name_or_path": str(model_dir), "template": "chatml", "infer_backend": "huggingface",
              "api_host": "127.0.0.1", "api_port": 0, "api_model_name": MODEL_NAME}
    path = folder / "infer.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def start_api(config: Path, home: Path) -> tuple[subprocess.Popen, str]:
    """`python -m engine api CONFIG` in its own process group; returns it and its URL (from the ready line)."""
    from engine.inference import READY_PREFIX

    env = {**os.environ, "STUDIO_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    log = open(home / "api.log", "w", encoding="utf-8")  # noqa: SIM115 - the child writes it until it stops
    proc = subprocess.Popen([sys.executable, "-m", "engine", "api", str(config)], cwd=home, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True,
                            start_new_session=True)
    log.close()
    ready: list[str] = []
    reader = threading.Thread(target=lambda: ready.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(READY_TIMEOUT_S)
    line = ready[0] if ready else ""
    if not line.startswith(READY_PREFIX):
        stop_process_group(proc)
        raise RuntimeError(f"the API server did not print its ready line within {READY_TIMEOUT_S:.0f} s "
                           f"(got {line!r}); see {home / 'api.log'}:\n"
                           f"{(home / 'api.log').read_text(encoding='utf-8')[-3000:]}")
    return proc, line.strip().removeprefix(READY_PREFIX)


def ask_server(client: Any, url: str, prompt: str, max_tokens: int) -> dict[str, float]:
    """One streamed greedy completion: seconds to the first text, tokens generated, seconds to the last chunk."""
    body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    first = None
    tokens = 0
    start = time.perf_counter()
    end = start
    with client.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=120) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(f"the server failed: {chunk['error']}")
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            for choice in chunk.get("choices", []):
                if first is None and choice["delta"].get("content"):
                    first = time.perf_counter()
                if choice.get("finish_reason"):
                    end = time.perf_counter()
    return {"ttft_s": (first or end) - start, "tokens": tokens, "total_s": end - start}


def ask_in_process(backend: Any, prompt: str, max_tokens: int) -> dict[str, float]:
    """The same completion with plain `model.generate` and a TextIteratorStreamer in this process."""
    import torch
    from transformers import TextIteratorStreamer

    prompt_ids, settings = backend.prepare([{"role": "user", "content": prompt}], None, None, None,
                                           {"temperature": 0, "max_new_tokens": max_tokens})
    model, tokenizer = backend.model, backend.tokenizer
    input_ids = torch.tensor([prompt_ids], dtype=torch.long)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    stops = backend.stop_token_ids()
    native = model.generation_config.eos_token_id
    stops += [t for t in (native if isinstance(native, list) else [native]) if t is not None and t not in stops]
    output: list[Any] = []

    def generate() -> None:
        with torch.inference_mode():
            output.append(model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                         max_new_tokens=settings.max_new_tokens, do_sample=False,
                                         eos_token_id=stops, pad_token_id=tokenizer.pad_token_id,
                                         streamer=streamer))

    first = None
    start = time.perf_counter()
    thread = threading.Thread(target=generate, name="generate")
    thread.start()
    for text in streamer:
        if first is None and text:
            first = time.perf_counter()
    thread.join()
    end = time.perf_counter()
    row = output[0][0, len(prompt_ids):].tolist()
    stop_at = next((i for i, token in enumerate(row) if token in stops), None)
    tokens = len(row) if stop_at is None else stop_at + 1
    return {"ttft_s": (first or end) - start, "tokens": tokens, "total_s": end - start}


def run_interleaved(url: str, backend: Any, prompts: list[str], repeats: int,
                    max_tokens: int) -> list[dict[str, Any]]:
    """Every prompt `repeats` times on the server and in-process, alternating, after one warm-up of each."""
    import httpx

    runs = []
    with httpx.Client() as client:
        ask_server(client, url, prompts[0], max_tokens)
        ask_in_process(backend, prompts[0], max_tokens)
        for repeat in range(repeats):
            for index, prompt in enumerate(prompts):
                # Which side goes first alternates, so neither always runs right after the other.
                first_server = (repeat * len(prompts) + index) % 2 == 0
                for kind in ("server", "in-process") if first_server else ("in-process", "server"):
                    if kind == "server":
                        result = ask_server(client, url, prompt, max_tokens)
                    else:
                        result = ask_in_process(backend, prompt, max_tokens)
                    result.update(kind=kind, prompt=index, repeat=repeat,
                                  tokens_per_s=result["tokens"] / result["total_s"])
                    runs.append(result)
                    print(f"  {kind:10s} prompt {index} #{repeat + 1}: TTFT {result['ttft_s'] * 1000:6.1f} ms, "
                          f"{result['tokens']:3d} tokens, {result['tokens_per_s']:7.1f} tokens/s", flush=True)
    return runs


def report(runs: list[dict[str, Any]], server_rss: float, own_rss: float) -> dict[str, Any]:
    """Medians of both sides, TTFT difference, tokens/s ratio and whether the targets were met."""

    def of(kind: str, key: str) -> dict[str, float]:
        return summarize(r[key] for r in runs if r["kind"] == kind)

    server = {"ttft_s": of("server", "ttft_s"), "tokens_per_s": of("server", "tokens_per_s"),
              "tokens": of("server", "tokens"), "peak_rss_mib": server_rss}
    local = {"ttft_s": of("in-process", "ttft_s"), "tokens_per_s": of("in-process", "tokens_per_s"),
             "tokens": of("in-process", "tokens"), "peak_rss_mib": own_rss}
    ttft_diff = server["ttft_s"]["median"] - local["ttft_s"]["median"]
    tps_ratio = server["tokens_per_s"]["median"] / local["tokens_per_s"]["median"]
    same_tokens = all(a["tokens"] == b["tokens"] for a, b in zip(runs[::2], runs[1::2], strict=True))
    print_table("Chat latency (medians)", ["side", "TTFT ms", "tokens/s", "tokens", "peak RSS MiB"], [
        ["in-process generate", local["ttft_s"]["median"] * 1000, local["tokens_per_s"]["median"],
         local["tokens"]["median"], own_rss],
        ["API server (HTTP)", server["ttft_s"]["median"] * 1000, server["tokens_per_s"]["median"],
         server["tokens"]["median"], server_rss],
    ])
    payload = {
        "baseline": {"name": "model.generate + TextIteratorStreamer in one process", **local},
        "ours": {"name": "python -m engine api, streamed /v1/chat/completions over httpx", **server},
        "ttft_difference_s": ttft_diff,
        "ttft_ratio": server["ttft_s"]["median"] / local["ttft_s"]["median"],
        "tokens_per_s_ratio": tps_ratio,
        "ratio": tps_ratio,
        "same_token_counts": same_tokens,
        "target": f"TTFT within +{TTFT_TARGET_S * 1000:.0f} ms and tokens/s >= {TOKENS_RATIO_TARGET}x in-process",
        "target_met": ttft_diff <= TTFT_TARGET_S and tps_ratio >= TOKENS_RATIO_TARGET,
        "runs": runs,
    }
    print(f"TTFT {ttft_diff * 1000:+.1f} ms, tokens/s {tps_ratio:.2f}x; target "
          f"{'met' if payload['target_met'] else 'MISSED'}"
          + ("" if same_tokens else " (token counts differ between the sides)"), flush=True)
    return payload


def main() -> int:
    """Build the demo model, start the server, measure both sides, write bench/results/<machine>/chat_latency.json."""
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=None, help="prompts (default 6, --quick 1)")
    ap.add_argument("--repeats", type=int, default=None, help="times each prompt is asked (default 3, --quick 1)")
    ap.add_argument("--max-tokens", type=int, default=None, help="max_tokens per reply (default 64, --quick 16)")
    args = ap.parse_args()
    prompts = load_prompts(args.prompts or (1 if args.quick else 6))
    repeats = args.repeats or (1 if args.quick else 3)
    max_tokens = args.max_tokens or (16 if args.quick else 64)
    os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    from engine.config import load_config
    from engine.inference import load_backend
    from engine.model.demo import build_demo_model

    with tempfile.TemporaryDirectory(prefix="bench-chat-") as tmp:
        home = Path(tmp)
        (home / "saves").mkdir()
        model_dir = build_demo_model(home / "demo-model")
        config = write_config(home, model_dir)
        proc, url = start_api(config, home)
        try:
            backend = load_backend(load_config(str(config), []))
            print(f"chat latency: {len(prompts)} prompts x {repeats}, max_tokens {max_tokens}, server {url}",
                  flush=True)
            runs = run_interleaved(url, backend, prompts, repeats, max_tokens)
            server_rss = tree_rss_mib(proc.pid, key="VmHWM")
        finally:
            stop_process_group(proc)
    payload = report(runs, server_rss, peak_rss_mib())
    write_result("chat_latency", {"prompts": len(prompts), "repeats": repeats, "max_tokens": max_tokens,
                                  "quick": args.quick, **payload}, args.results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
