"""Manual check: llama.cpp (through llama-cpp-python) reads our GGUF files as transformers reads the model.

    .venv/bin/python bench/gguf_parity.py            # builds the tiny demo model, exports f32/f16/q8_0, compares
    .venv/bin/python bench/gguf_parity.py EXPORT_DIR # an export folder holding HF weights and a .gguf file

For each GGUF file it reports whether llama.cpp tokenizes the rendered prompts to the same ids as the HF
tokenizer, how many greedy continuations (and tokens) agree with transformers, and how often llama.cpp's top
token is transformers' next token when both read transformers' answer (teacher forcing, which does not let one
early flip derail the rest). f32 and f16 must agree fully. q8_0 on the random-weight demo model does not: its
next-token margins are about 0.1 logit, and transformers itself, run on the same q8_0-rounded weights, keeps
only 1 of 5 greedy answers. Real models have wide margins. Not part of the test suite: llama-cpp-python
builds from source in 5-10 minutes. Skips with a message when it cannot be imported.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

PROMPTS = ("Hello! Who are you?", "Give me three tips for staying healthy.", "What is 12 times 7?",
           "Write a haiku about the sea.", "Translate 'good morning' into French.")
NEW_TOKENS = 24


def hf_greedy(model, ids: list[int], stops: list[int]) -> list[int]:
    import torch

    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([ids]), do_sample=False, max_new_tokens=NEW_TOKENS,
                             eos_token_id=stops, pad_token_id=stops[0])
    return out[0, len(ids):].tolist()


def llama_greedy(llm, ids: list[int], stops: list[int]) -> list[int]:
    llm.reset()
    out: list[int] = []
    for token in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
        out.append(token)
        if token in stops or len(out) >= NEW_TOKENS:
            break
    return out


def forced_top1(llm, ids: list[int], answer: list[int]) -> int:
    """How many of HF's answer tokens are llama.cpp's top token when fed HF's answer (teacher forcing)."""
    import numpy as np

    llm.reset()
    llm.eval(ids + answer)
    scores = np.asarray(llm.scores[len(ids) - 1:len(ids) - 1 + len(answer)])
    return int((scores.argmax(axis=-1) == np.asarray(answer)).sum())


def compare(folder: Path, gguf_file: Path) -> bool:
    """Print the agreement of one GGUF file with the HF model in `folder`; True when everything matches."""
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.export.parity import prompt_ids
    from engine.model.chat_template import load_template

    tokenizer = AutoTokenizer.from_pretrained(folder)
    template = load_template(None, str(folder), tokenizer)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32").eval()
    stops = list(dict.fromkeys([tokenizer.eos_token_id] + tokenizer.convert_tokens_to_ids(template.stop_words)))
    llm = Llama(model_path=str(gguf_file), n_ctx=512, verbose=False, logits_all=True)
    same_tokens = same_text = agree = total = forced = 0
    for prompt in PROMPTS:
        ids = prompt_ids(template, tokenizer, prompt)
        text = tokenizer.decode(ids)
        same_tokens += llm.tokenize(text.encode(), add_bos=False, special=True) == ids
        hf, cpp = hf_greedy(model, ids, stops), llama_greedy(llm, ids, stops)
        same_text += hf == cpp
        agree += sum(a == b for a, b in zip(hf, cpp, strict=False))
        total += max(len(hf), len(cpp))
        forced += forced_top1(llm, ids, hf)
    print(f"{gguf_file.name}: tokenization {same_tokens}/{len(PROMPTS)}, greedy answers {same_text}/{len(PROMPTS)}, "
          f"tokens {agree}/{total}, top-1 under teacher forcing {forced}/{total}")
    return same_tokens == same_text == len(PROMPTS)


def export_demo(out: Path) -> Path:
    """Build the tiny demo model and export it with f32, f16 and q8_0 GGUF files."""
    import shutil

    from engine.config import load_config
    from engine.export import run_export
    from engine.model.demo import build_demo_model

    model = build_demo_model(out / "tiny", hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                             intermediate_size=128, vocab_size=1024)
    export = out / "export"
    for outtype in ("f32", "f16", "q8_0"):
        config = load_config(None, {"model_name_or_path": str(model), "export_dir": str(out / outtype),
                                    "export_gguf": outtype, "export_parity": False})
        assert run_export(config) == 0
        if not export.exists():
            shutil.copytree(out / outtype, export)
        shutil.copy2(out / outtype / f"model-{outtype}.gguf", export)
    return export


def main(argv: list[str]) -> int:
    try:
        import llama_cpp  # noqa: F401
    except ImportError as err:
        print(f"skipped: llama-cpp-python cannot be imported ({err}); pip install llama-cpp-python (it builds "
              "from source for 5-10 minutes)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(argv[0]) if argv else export_demo(Path(tmp))
        files = sorted(folder.glob("*.gguf"))
        if not files:
            print(f"no .gguf file in {folder}")
            return 1
        results = {path.name: compare(folder, path) for path in files}
    strict = [ok for name, ok in results.items() if name.endswith("-f32.gguf")] or list(results.values())
    return 0 if all(strict) else 1  # f32 must match exactly; rounded types are reported


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
