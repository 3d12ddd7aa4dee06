"""Inference: the OpenAI-compatible server (driven by the official `openai` client), the backends and the terminal chat.

The server runs once per module as a real subprocess on a free loopback port, with an API key, serving the tiny
random model: its replies are gibberish, but greedy decoding is deterministic, which is all the protocol needs.
Tool calls a random model will never write are checked against a scripted backend served in-process.
"""

from __future__ import annotations

import io
import json
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from engine.config import load_config
from engine.inference import READY_PREFIX, ChatBackend, Completion, InferenceError, Sampling, load_backend
from engine.inference.api import bind_socket, make_server, server_address
from engine.inference.backend import StopMatcher
from engine.inference.chat import run_chat
from engine.inference.engine import resolve_inference_config
from engine.inference.protocol import ChatMessage, to_conversation

ROOT = Path(__file__).resolve().parent.parent.parent
KEY = "sk-test-key"
MODEL = "tiny-chat"
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CALL_TEXT = 'Action: get_weather\nAction Input: {"city": "Paris"}'
pytestmark = pytest.mark.slow


def engine_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine", *args]


def child_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("API_KEY", "API_HOST", "API_PORT")}
    return {**env, "STUDIO_HOME": str(home), "PYTHONPATH": str(ROOT)}


def read_line(stream: Any, timeout: float) -> str:
    """One line from a pipe, or "" when nothing came in time."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


# ---------------------------------------------------------------- the server subprocess


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`studio api` on port 0 (a free one, read back from the ready line) with an API key and a model name."""
    home = tmp_path_factory.mktemp("api")
    config = home / "infer.yaml"
    config.write_text(yaml.safe_dump({"model_name_or_path": str(tiny_model_dir), "max_new_tokens": 32}))
    log = open(home / "server.log", "w+", encoding="utf-8")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(engine_command("api", str(config), "api_port=0", f"api_key={KEY}",
                                           f"api_model_name={MODEL}"), cwd=home,
                            stdout=subprocess.PIPE, stderr=log, text=True, env=child_env(home))
    line = read_line(proc.stdout, 120)
    if not line.startswith(READY_PREFIX):
        proc.kill()
        log.seek(0)
        pytest.fail(f"no ready line (got {line!r}); server log:\n{log.read()[-3000:]}")
    url = line.strip().removeprefix(READY_PREFIX)
    yield {"url": url, "base_url": f"{url}/v1", "model": MODEL, "config": config, "home": home}
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    assert proc.stdout.read() == ""  # nothing but the ready line on stdout
    log.close()


@pytest.fixture(scope="module")
def client(server: dict[str, Any]) -> openai.OpenAI:
    return openai.OpenAI(base_url=server["base_url"], api_key=KEY, max_retries=0, timeout=60)


def ask(client: openai.OpenAI, model: str, **kwargs: Any) -> Any:
    kwargs.setdefault("messages", [{"role": "user", "content": "Hello, who are you?"}])
    return client.chat.completions.create(model=model, **kwargs)


def streamed(client: openai.OpenAI, model: str, **kwargs: Any) -> tuple[dict[int, str], dict[int, str], Any]:
    """(text per choice, finish reason per choice, usage) of a streamed request."""
    texts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    usage = None
    for chunk in ask(client, model, stream=True, stream_options={"include_usage": True}, **kwargs):
        usage = chunk.usage or usage
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    return texts, finishes, usage


def test_ready_line_and_models(server: dict[str, Any], client: openai.OpenAI):
    assert server["url"].startswith("http://127.0.0.1:")
    assert [m.id for m in client.models.list()] == [server["model"]]
    assert client.models.retrieve(server["model"]).id == server["model"]
    assert httpx.get(f"{server['url']}/health").json()["status"] == "ok"  # no key needed


def test_completion_usage_counts_the_rendered_prompt(server: dict[str, Any], client: openai.OpenAI,
                                                     tiny_model_dir: Path):
    from transformers import AutoTokenizer

    from engine.model.chat_template import load_template
    from engine.templates import render_prompt_ids

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, who are you?"}]
    reply = ask(client, server["model"], messages=messages, temperature=0, max_tokens=8)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    template = load_template(None, str(tiny_model_dir), tokenizer)
    expected = len(render_prompt_ids(template, tokenizer, messages[1:], "Be brief."))
    assert reply.object == "chat.completion" and reply.model == server["model"]
    assert reply.usage.prompt_tokens == expected
    assert 1 <= reply.usage.completion_tokens <= 8
    assert reply.usage.total_tokens == expected + reply.usage.completion_tokens
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    if choice.finish_reason == "length":
        assert reply.usage.completion_tokens == 8


def test_stream_equals_non_stream_for_greedy_decoding(server: dict[str, Any], client: openai.OpenAI):
    whole = ask(client, server["model"], temperature=0, max_tokens=24, seed=5)
    texts, finishes, usage = streamed(client, server["model"], temperature=0, max_tokens=24, seed=5)
    assert texts == {0: whole.choices[0].message.content}
    assert finishes == {0: whole.choices[0].finish_reason}
    assert (usage.prompt_tokens, usage.completion_tokens) == (whole.usage.prompt_tokens,
                                                              whole.usage.completion_tokens)


def test_raw_stream_is_sse_ending_with_done(server: dict[str, Any]):
    body = {"model": server["model"], "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
            "stream": True, "temperature": 0}
    with httpx.stream("POST", f"{server['base_url']}/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {KEY}"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_an_abandoned_stream_does_not_block_the_next_request(server: dict[str, Any], client: openai.OpenAI):
    body = {"model": server["model"], "messages": [{"role": "user", "content": "hi"}], "max_tokens": 500,
            "stream": True, "temperature": 1.0, "top_p": 1.0, "seed": 3}
    with httpx.stream("POST", f"{server['base_url']}/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {KEY}"}) as response:
        next(response.iter_lines())  # read one event, then hang up
    quick = openai.OpenAI(base_url=server["base_url"], api_key=KEY, max_retries=0, timeout=30)
    assert ask(quick, server["model"], max_tokens=2).usage.completion_tokens <= 2


def test_max_tokens_and_stop_strings(server: dict[str, Any], client: openai.OpenAI):
    short = ask(client, server["model"], temperature=0, max_tokens=3)
    assert short.usage.completion_tokens <= 3
    full = ask(client, server["model"], temperature=0, max_tokens=24).choices[0].message.content
    stop = next(full[i:i + 2] for i in range(3, len(full) - 2)
                if full[i:i + 2].strip() == full[i:i + 2] and "\ufffd" not in full[i:i + 2])
    cut = ask(client, server["model"], temperature=0, max_tokens=24, stop=[stop, "never-there"])
    assert cut.choices[0].message.content == full[:full.find(stop)]
    assert cut.choices[0].finish_reason == "stop"
    texts, finishes, _ = streamed(client, server["model"], temperature=0, max_tokens=24, stop=stop)
    assert texts == {0: full[:full.find(stop)]} and finishes == {0: "stop"}


def test_n_choices_and_seed(server: dict[str, Any], client: openai.OpenAI):
    first = ask(client, server["model"], temperature=1.0, top_p=1.0, max_tokens=6, n=3, seed=11)
    again = ask(client, server["model"], temperature=1.0, top_p=1.0, max_tokens=6, n=3, seed=11)
    assert [c.index for c in first.choices] == [0, 1, 2]
    assert [c.message.content for c in first.choices] == [c.message.content for c in again.choices]
    assert 3 <= first.usage.completion_tokens <= 18
    greedy = ask(client, server["model"], temperature=0, max_tokens=6, n=2)
    assert greedy.choices[0].message.content == greedy.choices[1].message.content
    texts, _, _ = streamed(client, server["model"], temperature=0, max_tokens=6, n=2)
    assert texts == {0: greedy.choices[0].message.content, 1: greedy.choices[1].message.content}


def test_multi_turn_with_system(server: dict[str, Any], client: openai.OpenAI):
    one = ask(client, server["model"], temperature=0, max_tokens=4)
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello, who are you?"},
                {"role": "assistant", "content": "A model."}, {"role": "user", "content": "And what can you do?"}]
    many = ask(client, server["model"], messages=messages, temperature=0, max_tokens=4)
    assert many.usage.prompt_tokens > one.usage.prompt_tokens + 10


def test_wrong_or_missing_key_is_refused(server: dict[str, Any]):
    wrong = openai.OpenAI(base_url=server["base_url"], api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.models.list()
    assert caught.value.status_code == 401
    assert caught.value.body["code"] == "invalid_api_key"
    response = httpx.post(f"{server['base_url']}/chat/completions", content=b"{not json")
    assert response.status_code == 401  # the key is checked before the body is read
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_bad_requests_get_openai_shaped_errors(server: dict[str, Any], client: openai.OpenAI):
    headers = {"Authorization": f"Bearer {KEY}"}
    url = f"{server['base_url']}/chat/completions"
    missing = httpx.post(url, json={"model": server["model"]}, headers=headers)
    assert missing.status_code == 422
    error = missing.json()["error"]
    assert error["param"] == "messages" and error["type"] == "invalid_request_error" and error["message"]
    broken = httpx.post(url, content=b"{not json", headers={**headers, "Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_json"
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        ask(client, server["model"], temperature=7)
    assert caught.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as caught:  # no reply is due after an assistant message
        ask(client, server["model"], messages=[{"role": "user", "content": "hi"},
                                                {"role": "assistant", "content": "hello"}])
    assert caught.value.body["code"] == "api_reply_not_due"
    with pytest.raises(openai.BadRequestError):
        ask(client, server["model"], messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {
            "url": "data:,"}}]}])
    with pytest.raises(openai.NotFoundError) as caught:
        ask(client, "gpt-4o")
    assert caught.value.body["code"] == "model_not_found"
    unknown = httpx.get(f"{server['base_url']}/nothing", headers=headers)
    assert unknown.status_code == 404 and "error" in unknown.json()


def test_tools_are_rendered_and_a_tool_round_trip_is_accepted(server: dict[str, Any], client: openai.OpenAI):
    plain = ask(client, server["model"], temperature=0, max_tokens=4)
    with_tools = ask(client, server["model"], temperature=0, max_tokens=4, tools=[WEATHER_TOOL])
    assert with_tools.usage.prompt_tokens > plain.usage.prompt_tokens + 20  # the tool list is in the prompt
    assert with_tools.choices[0].finish_reason in ("stop", "length")  # gibberish is no call
    no_tools = ask(client, server["model"], temperature=0, max_tokens=4, tools=[WEATHER_TOOL], tool_choice="none")
    assert no_tools.usage.prompt_tokens == plain.usage.prompt_tokens
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 21}'},
    ]
    answer = ask(client, server["model"], messages=messages, tools=[WEATHER_TOOL], temperature=0, max_tokens=4)
    assert answer.choices[0].message.role == "assistant"
    assert answer.usage.prompt_tokens > with_tools.usage.prompt_tokens


# ---------------------------------------------------------------- tool calls, unit level


def chatml(tiny_model_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoTokenizer

    from engine.model.chat_template import load_template

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return tokenizer, load_template("chatml", str(tiny_model_dir), tokenizer)


def test_tool_rendering_and_parsing(tiny_model_dir: Path):
    from engine.templates import render_text

    tokenizer, template = chatml(tiny_model_dir)
    raw = [{"role": "system", "content": "Use tools."}, {"role": "user", "content": "Weather in Paris?"},
           {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {
               "name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
           {"role": "tool", "tool_call_id": "c", "content": "21 C"}, {"role": "tool", "content": "sunny"}]
    messages, system = to_conversation([ChatMessage(**m) for m in raw])
    assert system == "Use tools."
    assert [m["role"] for m in messages] == ["user", "function", "observation"]
    assert messages[2]["content"] == "21 C\nsunny"  # results of one turn's calls become one observation
    text = render_text(template, messages, system, [WEATHER_TOOL["function"]], tokenizer=tokenizer)
    assert "get_weather" in text and "Current weather in a city." in text and '"city"' in text
    assert CALL_TEXT in text and "<|im_start|>tool\n21 C\nsunny" in text
    assert text.endswith("<|im_start|>assistant\n")
    assert template.extract_tool_calls(CALL_TEXT) == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    assert template.extract_tool_calls("It is sunny.") is None


class ScriptedBackend(ChatBackend):
    """Always answers `reply` (streamed in two pieces); for protocol tests a random model cannot drive."""

    def __init__(self, tokenizer: Any, template: Any, reply: str) -> None:
        self.tokenizer, self.template, self.reply = tokenizer, template, reply
        self.defaults, self.model_id = Sampling(), "scripted"

    def _complete(self, prompt_ids: list[int], sampling: Sampling) -> list[Completion]:
        return [Completion(self.reply, len(prompt_ids), 7, "stop")] * sampling.n

    def _stream(self, prompt_ids: list[int], sampling: Sampling) -> Iterator[str | Completion]:
        yield self.reply[:9]
        yield self.reply[9:]
        yield Completion(self.reply, len(prompt_ids), 7, "stop")


@pytest.fixture()
def scripted_server(tiny_model_dir: Path) -> Iterator[openai.OpenAI]:
    """A ScriptedBackend that writes a tool call, served in a thread (no key)."""
    tokenizer, template = chatml(tiny_model_dir)
    sock = bind_socket("127.0.0.1", 0)
    ready = io.StringIO()
    server = make_server(ScriptedBackend(tokenizer, template, CALL_TEXT), sock, None, ready)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ready.getvalue() == f"{READY_PREFIX}http://127.0.0.1:{sock.getsockname()[1]}\n"
    yield openai.OpenAI(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}/v1", api_key="unused", max_retries=0)
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_tool_calls_in_responses(scripted_server: openai.OpenAI):
    reply = ask(scripted_server, "scripted", tools=[WEATHER_TOOL])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}

    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in ask(scripted_server, "scripted", tools=[WEATHER_TOOL], stream=True):
        for delta_call in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(delta_call.index, {"name": "", "arguments": ""})
            entry["name"] += delta_call.function.name or ""
            entry["arguments"] += delta_call.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert calls[0]["name"] == "get_weather" and json.loads(calls[0]["arguments"]) == {"city": "Paris"}

    without_tools = ask(scripted_server, "scripted")  # no tools offered: the text is an answer
    assert without_tools.choices[0].message.content == CALL_TEXT
    assert without_tools.choices[0].finish_reason == "stop"


# ---------------------------------------------------------------- pieces


def test_stop_matcher_holds_back_a_possible_stop():
    matcher = StopMatcher(["END"])
    assert matcher.feed("abc E") == "abc "
    assert matcher.feed("N") == ""
    assert matcher.feed("D and more") == "" and matcher.stopped and matcher.text == "abc "
    open_end = StopMatcher(["END"])
    assert open_end.feed("xE") == "x" and open_end.flush() == "E"


def test_sampling_overrides():
    base = Sampling(do_sample=True, temperature=0.7, max_new_tokens=100)
    assert base.updated(temperature=0).greedy
    assert base.updated(temperature=None, stop="###").stop == ("###",)
    assert base.updated(max_new_tokens=5).max_new_tokens == 5 and not base.updated().greedy


def test_server_address_from_env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("API_HOST", "127.0.0.2")
    monkeypatch.setenv("API_PORT", "8123")
    monkeypatch.setenv("API_KEY", "k")
    assert server_address(None, None, None) == ("127.0.0.2", 8123, "k")
    assert server_address("127.0.0.1", 9000, "c") == ("127.0.0.1", 9000, "c")  # the config wins
    monkeypatch.setenv("API_PORT", "eighty")
    with pytest.raises(InferenceError, match="API_PORT='eighty'"):
        server_address(None, None, None)
    monkeypatch.delenv("API_HOST")
    monkeypatch.delenv("API_PORT")
    monkeypatch.delenv("API_KEY")
    assert server_address(None, None, None) == ("127.0.0.1", 8000, None)


def test_busy_port_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(InferenceError) as caught:
            bind_socket("127.0.0.1", taken.getsockname()[1])
    assert caught.value.key == "api_port_in_use"


def test_vllm_missing_or_without_cuda_is_a_clear_error(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]):
    from engine.cli import main

    config = load_config(None, {"model_name_or_path": str(tiny_model_dir), "infer_backend": "vllm"})
    with pytest.raises(InferenceError) as caught:
        load_backend(config)
    assert caught.value.key == "vllm_missing"
    assert main(["chat", f"model_name_or_path={tiny_model_dir}", "infer_backend=vllm"]) == 1
    err = capsys.readouterr().err
    assert "vllm" in err and "infer_backend: huggingface" in err and "Traceback" not in err

    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "vllm" else real_find_spec(name, *a))
    with pytest.raises(InferenceError) as caught:
        load_backend(load_config(None, {"model_name_or_path": str(tiny_model_dir), "infer_backend": "vllm"}))
    assert caught.value.key == "vllm_needs_cuda"


def test_quantized_model_streams_what_it_generates(tiny_model_dir: Path):
    pytest.importorskip("bitsandbytes")
    backend = load_backend(load_config(None, {"model_name_or_path": str(tiny_model_dir), "quantization_bit": 4}))
    assert type(backend.model.model.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    messages = [{"role": "user", "content": "hi"}]
    whole = backend.generate(messages, temperature=0, max_new_tokens=5)
    *pieces, final = backend.stream(messages, temperature=0, max_new_tokens=5)
    assert "".join(pieces) == whole.text and final == whole


def test_vllm_engine_arguments():
    from engine.inference.vllm_backend import engine_arguments

    config = load_config(None, {"vllm_maxlen": 2048, "vllm_gpu_util": 0.5, "infer_dtype": "bfloat16"})
    args = engine_arguments(config, "/models/base", ["/runs/a"])
    assert (args["model"], args["max_model_len"], args["gpu_memory_utilization"]) == ("/models/base", 2048, 0.5)
    assert args["enable_lora"] and args["max_lora_rank"] == 32 and args["dtype"] == "bfloat16"
    assert "enable_lora" not in engine_arguments(config, "/models/base", [])
    with pytest.raises(InferenceError, match="one LoRA adapter"):
        engine_arguments(config, "/models/base", ["/a", "/b"])
    config.model.quantization_bit = 4
    assert engine_arguments(config, "/m", [])["quantization"] == "bitsandbytes"
    config.model.quantization_bit = 8
    with pytest.raises(InferenceError, match="4 bits"):
        engine_arguments(config, "/m", [])


def test_vllm_config_adds_engine_arguments():
    from engine.inference.vllm_backend import engine_arguments

    for value in ({"max_num_seqs": 64, "enforce_eager": True}, '{"max_num_seqs": 64, "enforce_eager": true}'):
        args = engine_arguments(load_config(None, {"vllm_config": value}), "/m", [])
        assert args["max_num_seqs"] == 64 and args["enforce_eager"] is True
    with pytest.raises(InferenceError, match="max_num_seqs"):
        engine_arguments(load_config(None, {"vllm_config": "max_num_seqs=64"}), "/m", [])


# ---------------------------------------------------------------- run folders


def make_run(tmp_path: Path, tiny_model_dir: Path, **settings: Any) -> Path:
    """A LoRA run folder: config.yaml as training writes it, and a real (random) adapter."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from engine.config import save_config

    run = tmp_path / "saves" / "my-run"
    config = load_config(None, {"model_name_or_path": str(tiny_model_dir), "template": "chatml",
                                "finetuning_type": "lora", "output_dir": str(run), **settings})
    save_config(config, run / "config.yaml")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"])).save_pretrained(run)
    return run


def test_run_folder_supplies_base_template_and_generation(tiny_model_dir: Path, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture):
    run = make_run(tmp_path, tiny_model_dir, temperature=0.3, max_new_tokens=7)
    config, model_id = resolve_inference_config(load_config(None, {"adapter_name_or_path": str(run)}))
    assert model_id == "my-run"
    assert config.model.model_name_or_path == str(tiny_model_dir) and config.model.adapter_name_or_path == str(run)
    assert config.model.template == "chatml"
    assert (config.generation.temperature, config.generation.max_new_tokens) == (0.3, 7)

    with caplog.at_level(logging.WARNING):
        config, _ = resolve_inference_config(
            load_config(None, {"adapter_name_or_path": str(run), "template": "default", "max_new_tokens": 9}),
            explicit={"adapter_name_or_path", "template", "max_new_tokens"})
    assert config.model.template == "default" and config.generation.max_new_tokens == 9
    assert config.generation.temperature == 0.3
    assert "trained with 'chatml'" in caplog.text

    backend = load_backend(load_config(None, {"adapter_name_or_path": str(run)}))
    text, prompt_tokens, completion_tokens, finish = backend.generate([{"role": "user", "content": "hi"}],
                                                                      temperature=0, max_new_tokens=3)
    assert isinstance(text, str) and prompt_tokens > 0 and 1 <= completion_tokens <= 3 and finish in ("stop", "length")
    assert type(backend.model).__name__.startswith("PeftModel")

    empty = tmp_path / "saves" / "fresh-run"
    empty.mkdir()
    (empty / "config.yaml").write_text((run / "config.yaml").read_text())
    with pytest.raises(InferenceError) as caught:
        resolve_inference_config(load_config(None, {"adapter_name_or_path": str(empty)}))
    assert caught.value.key == "run_has_no_weights"


def test_trust_remote_code_is_never_inherited_from_the_run(tiny_model_dir: Path, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture):
    run = make_run(tmp_path, tiny_model_dir, trust_remote_code=True)
    for explicit in (None, {"adapter_name_or_path"}):
        with caplog.at_level(logging.WARNING):
            config, _ = resolve_inference_config(load_config(None, {"adapter_name_or_path": str(run)}), explicit)
        assert config.model.trust_remote_code is False, "only what the user set for this job"
        assert "trust_remote_code" in caplog.text and "trust_remote_code=true" in caplog.text, "says how to turn it on"
        caplog.clear()
    config, _ = resolve_inference_config(load_config(None, {"adapter_name_or_path": str(run),
                                                            "trust_remote_code": True}))
    assert config.model.trust_remote_code is True


# ---------------------------------------------------------------- terminal chat


def test_terminal_chat_with_piped_input(tiny_model_dir: Path, tmp_path: Path):
    config = tmp_path / "chat.yaml"
    config.write_text(yaml.safe_dump({"model_name_or_path": str(tiny_model_dir), "max_new_tokens": 4}))
    done = subprocess.run(engine_command("chat", str(config)), cwd=tmp_path, input="hi\nclear\nexit\n",
                          capture_output=True, text=True, timeout=120, env=child_env(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("Assistant: ") == 1 and "History cleared." in done.stdout
    assert "Traceback" not in done.stderr


def test_chat_loop_clear_and_end_of_input(tiny_model_dir: Path):
    tokenizer, template = chatml(tiny_model_dir)
    backend = ScriptedBackend(tokenizer, template, "Hello there, friend.")
    inputs = iter(["hi", "again", "clear", "hi"])
    seen: list[int] = []
    original = backend.prepare

    def spy(messages: Any, *args: Any) -> Any:
        seen.append(len(messages))
        return original(messages, *args)

    backend.prepare = spy  # type: ignore[method-assign]

    def read(prompt: str) -> str:
        try:
            return next(inputs)
        except StopIteration:
            raise EOFError from None

    out = io.StringIO()
    assert run_chat(backend, read, out, io.StringIO()) == 0
    assert out.getvalue().count("Assistant: Hello there, friend.") == 3
    assert seen == [1, 3, 1]  # the history grows, and `clear` empties it


def test_event_pump_sends_every_event_in_order_and_closes_the_generator():
    import asyncio

    from engine.inference.api import _in_threads

    closed = threading.Event()

    def events(count: int) -> Iterator[str]:
        try:
            for index in range(count):
                yield f"data: {index}\n\n"
        finally:
            closed.set()

    async def read_all() -> str:
        return "".join([chunk async for chunk in _in_threads(events(200))])

    assert asyncio.run(read_all()) == "".join(f"data: {index}\n\n" for index in range(200)) and closed.is_set()


def test_event_pump_stops_an_abandoned_generator_and_passes_on_failures():
    import asyncio

    from engine.inference.api import _in_threads

    closed = threading.Event()

    def endless() -> Iterator[str]:
        try:
            while True:
                yield "data: x\n\n"
                time.sleep(0.001)
        finally:
            closed.set()

    async def read_one_then_leave() -> str:
        stream = _in_threads(endless())
        first = await stream.__anext__()
        await stream.aclose()  # what the response does when the client goes away
        return first

    assert asyncio.run(read_one_then_leave()).startswith("data: x") and closed.is_set()

    def failing() -> Iterator[str]:
        yield "data: 1\n\n"
        raise ValueError("generation broke")

    async def read_failing() -> list[str]:
        return [chunk async for chunk in _in_threads(failing())]

    with pytest.raises(ValueError, match="generation broke"):
        asyncio.run(read_failing())
