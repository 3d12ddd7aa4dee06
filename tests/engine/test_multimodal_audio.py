"""Audio on the offline audio demo (a tiny Qwen2-Audio): build, tokens and features against transformers' own
processor, freezing, training (SFT, and DPO on tone pairs), the learning check (held-out accuracy on tones of three
pitches), chat with audio through the backend and the OpenAI API, and export."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.config import config_from_dict
from engine.errors import StudioError
from tests.engine.media_helpers import (
    DATA,
    accuracy,
    export_merged,
    lora_targets,
    media_backend,
    media_plugin,
    ranking_pairs,
    sha,
    train_media,
)
from tests.engine.test_api_media import served

RATE = 16000


def _plugin(model_dir: Path):
    return media_plugin(model_dir, "qwen2_audio")


def _train(model_dir: Path, out: Path, **extra) -> Path:
    return train_media(model_dir, out, **{"template": "qwen2_audio", "dataset": "mllm_tones", "max_steps": 30,
                                          "logging_steps": 5, **extra})


@pytest.fixture(scope="module")
def tone_run(audio_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LoRA on the language model only (encoder and projector frozen, the defaults), trained once on mllm_tones."""
    return _train(audio_model_dir, tmp_path_factory.mktemp("runs") / "tones")


def _eval_rows() -> list[dict]:
    return json.loads((DATA / "mllm_tones_eval.json").read_text(encoding="utf-8"))


def _accuracy(backend, rows: list[dict]) -> float:
    return accuracy(backend, rows, "audios")


def _backend(**values):
    return media_backend(**{"template": "qwen2_audio", **values})


def _tone(seconds: float, hz: float = 440.0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * hz * np.arange(round(seconds * RATE)) / RATE)).astype(np.float32)


# ---------------------------------------------------------------- the model and its tokens


def test_audio_demo_is_a_deterministic_qwen2_audio(audio_model_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]):
    from transformers import AutoConfig

    from engine.cli import main
    from engine.multimodal.parts import media_model_class

    assert main(["demo-model", "--audio", str(tmp_path / "again")]) == 0
    again = Path(capsys.readouterr().out.strip().splitlines()[-1])
    for name in ("model.safetensors", "tokenizer.json", "preprocessor_config.json"):
        assert sha(again / name) == sha(audio_model_dir / name), name
    config = AutoConfig.from_pretrained(audio_model_dir)
    assert config.model_type == "qwen2_audio" and media_model_class(config).from_config(config).__class__.__name__ \
        == "Qwen2AudioForConditionalGeneration"
    extractor = json.loads((audio_model_dir / "preprocessor_config.json").read_text(encoding="utf-8"))
    assert extractor["feature_extractor_type"] == "WhisperFeatureExtractor" and extractor["nb_max_frames"] == 100
    assert json.loads((audio_model_dir / "studio_model.json").read_text(encoding="utf-8"))["template"] == "qwen2_audio"


def test_placeholders_expand_as_transformers_processor_does(audio_model_dir: Path):
    """Half a second is 50 mel frames, 25 after the stride-2 convolution, 12 after pooling; a clip longer than the
    one-second window is cut to it (25 tokens). The ids match Qwen2AudioProcessor's, and the features too."""
    from transformers import Qwen2AudioProcessor

    from engine.data.media import PLACEHOLDERS

    plugin, tokenizer = _plugin(audio_model_dir)
    clips = [_tone(0.5), _tone(1.5, 880.0)]
    loaded = plugin.load({"audios": clips})
    counts = plugin.token_counts(loaded)
    assert counts == {"audios": [12, 25]}
    text = plugin.expand([{"role": "user", "content": "<audio>a<audio>b"}], counts, PLACEHOLDERS)[0]["content"]
    assert text == ("<|audio_bos|>" + "<|AUDIO|>" * 12 + "<|audio_eos|>a<|audio_bos|>" + "<|AUDIO|>" * 25
                    + "<|audio_eos|>b")
    reference = Qwen2AudioProcessor(feature_extractor=plugin.processor, tokenizer=tokenizer)(
        text=["<|audio_bos|><|AUDIO|><|audio_eos|>a<|audio_bos|><|AUDIO|><|audio_eos|>b"], audio=clips,
        sampling_rate=RATE, return_tensors="np")
    ours = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ours == reference["input_ids"][0].tolist()
    features = plugin.features([loaded])
    assert features["input_features"].shape == (2, 128, 100)
    assert np.allclose(features["input_features"].numpy(), reference["input_features"])
    assert features["feature_attention_mask"].sum(-1).tolist() == [50, 100]
    assert plugin.expected_tokens(counts) == {tokenizer.convert_tokens_to_ids("<|AUDIO|>"): 37}
    assert plugin.token_type_ids(None) is None  # Qwen2-Audio's forward and generate take no mm_token_type_ids


def test_a_sampling_rate_the_model_does_not_hear_is_refused(audio_model_dir: Path):
    from engine.model.loader import load_tokenizer
    from engine.multimodal.plugins import get_plugin
    from engine.templates import get_template

    config = config_from_dict({"model_name_or_path": str(audio_model_dir), "template": "qwen2_audio",
                               "audio_sampling_rate": 8000})
    with pytest.raises(StudioError, match="audio_sampling_rate: 16000"):
        get_plugin(get_template("qwen2_audio"), load_tokenizer(config.model), config.model)


def test_lora_targets_only_the_parts_that_train(audio_model_dir: Path):
    from transformers import AutoModelForMultimodalLM

    model = AutoModelForMultimodalLM.from_pretrained(audio_model_dir)
    targets, everything = lora_targets(model)
    assert targets and all(".language_model." in name for name in targets)
    assert any(".audio_tower.layers." in n for n in everything)
    assert any(".multi_modal_projector." in n for n in everything)


# ---------------------------------------------------------------- training and the learning check


@pytest.mark.slow
def test_lora_learns_pitch_from_sound(audio_model_dir: Path, tone_run: Path):
    """Held-out accuracy on tones of three pitches: the base model never answers right, the adapter nearly always.
    The answer is only in the sound (same question every row, pitches balanced and shuffled, lengths, loudness and
    starts random)."""
    rows = _eval_rows()
    before = _accuracy(_backend(model_name_or_path=str(audio_model_dir)), rows)
    after = _accuracy(_backend(model_name_or_path=str(audio_model_dir), adapter_name_or_path=str(tone_run)), rows)
    results = json.loads((tone_run / "all_results.json").read_text(encoding="utf-8"))
    print(f"held-out accuracy on {len(rows)} tones: before {before:.2f}, after {after:.2f} "
          f"(train_runtime {results['train_runtime']:.1f} s)")
    assert before <= 0.4 < 0.9 <= after
    log = [json.loads(line) for line in (tone_run / "trainer_log.jsonl").read_text().splitlines()]
    losses = [entry["loss"] for entry in log if "loss" in entry]
    assert losses[-1] < losses[0] / 4


@pytest.mark.slow
def test_the_shipped_audio_demo_dataset_trains(audio_model_dir: Path, tmp_path: Path):
    out = _train(audio_model_dir, tmp_path / "demo", dataset="mllm_audio_demo", max_steps=2,
                 per_device_train_batch_size=3)
    assert (out / "adapter_model.safetensors").is_file()


def _tone_pairs(folder: Path) -> Path:
    """A ranking dataset of tones: the right pitch chosen, another rejected (paths relative to it)."""
    from engine.data.synthetic import PITCHES, tones

    return ranking_pairs(folder, "tone_pairs", tones(folder / "tones", 12, seed=7, relative_to=folder), list(PITCHES),
                         "audios")


@pytest.mark.slow
def test_dpo_on_audio_pairs(audio_model_dir: Path, tmp_path: Path):
    """DPO on tone pairs: the clips reach both halves of each batch and the reward margin grows."""
    data = _tone_pairs(tmp_path / "data")
    out = _train(audio_model_dir, tmp_path / "dpo", stage="dpo", dataset="tone_pairs", dataset_dir=str(data),
                 max_steps=8, per_device_train_batch_size=4, learning_rate=5e-3, logging_steps=1, pref_beta=0.1)
    log = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    margins = [entry["rewards/margins"] for entry in log if "rewards/margins" in entry]
    assert len(margins) >= 6 and sum(margins[-3:]) / 3 > sum(margins[:3]) / 3


# ---------------------------------------------------------------- chat and export


def test_chat_with_audio_through_the_backend(audio_model_dir: Path):
    backend = _backend(model_name_or_path=str(audio_model_dir))
    assert backend.modalities == frozenset({"audios"})
    plain = backend.generate([{"role": "user", "content": "What do you hear?"}], max_new_tokens=2)
    heard = backend.generate([{"role": "user", "content": "<audio>What do you hear?"}],
                             media={"audios": [str(DATA / "mllm_demo_data" / "1.wav")]}, max_new_tokens=2)
    assert heard.prompt_tokens - plain.prompt_tokens == 25 + 2  # one second: 25 audio tokens, bos and eos
    with pytest.raises(StudioError, match="placeholder"):
        backend.generate([{"role": "user", "content": "no placeholder"}], media={"audios": [_tone(0.5)]})
    with pytest.raises(StudioError, match="image"):
        backend.generate([{"role": "user", "content": "<image>hi"}], media={"images": [Image.new("RGB", (8, 8))]})


@pytest.mark.slow
def test_the_api_answers_an_input_audio_part(audio_model_dir: Path, tone_run: Path):
    """The official `openai` client sends held-out tones as base64 WAV `input_audio` parts; the trained model names
    their pitch. An image part is refused with a 400 naming what the model reads."""
    import openai

    backend = _backend(model_name_or_path=str(audio_model_dir), adapter_name_or_path=str(tone_run),
                       max_new_tokens=4)
    backend.model_id = "tones"
    rows = _eval_rows()[:6]
    try:
        with served(backend) as client:
            for row in rows:
                wav = base64.b64encode((DATA / row["audios"][0]).read_bytes()).decode()
                question = row["messages"][0]["content"].replace("<audio>", "")
                content = [{"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}},
                           {"type": "text", "text": question}]
                answer = client.chat.completions.create(model="tones", temperature=0,
                                                        messages=[{"role": "user", "content": content}])
                assert answer.choices[0].message.content.strip() == row["messages"][1]["content"]
            image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
            with pytest.raises(openai.BadRequestError) as err:
                client.chat.completions.create(model="tones", messages=[{"role": "user", "content": [image]}])
            assert err.value.code == "api_media_unsupported" and "input_audio" in err.value.body["message"]
    finally:
        backend.close()


@pytest.mark.slow
def test_export_merges_an_audio_adapter(audio_model_dir: Path, tone_run: Path, tmp_path: Path):
    export_dir = export_merged(audio_model_dir, tone_run, "qwen2_audio", tmp_path / "merged")
    assert sha(export_dir / "preprocessor_config.json") == sha(audio_model_dir / "preprocessor_config.json")
    merged = _backend(model_name_or_path=str(export_dir), finetuning_type="full")
    assert _accuracy(merged, _eval_rows()[:6]) >= 5 / 6
