"""The opt-in demo on tiny real models (``scripts/demo.sh --tiny``): every production physical
model built tiny by ``scripts/make_tiny_models.py``, ``config/demo-tiny`` checked and served
by ``llmux serve`` in a subprocess as a user starts it, and every endpoint driven through the
official ``openai`` client on the real runtimes (transformers, llamacpp, chatterbox).

Random weights say nothing sensible: the tests assert structure (status, fields, token
counts within ``max_tokens``, audio that decodes), never words. All three Chatterbox variants
are tested: building them and one synthesis each takes about 65 s on 2 cores (build ~22 s;
Turbo ~6 s, English ~19 s, Multilingual ~19 s, first load included), under the 90 s above
which this test would keep to Turbo only. The whole module takes ~85 s.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmux.testing import serve_process, sine_wav

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config" / "demo-tiny"
MAKE = REPO / "scripts" / "make_tiny_models.py"
KEY = "sk-llmux-demo-0000000000000000"
MAX_TOKENS = 8
PHYSICAL_DIRS = [
    "qwen3.5-9b-fp8", "qwen3.5-9b-uncensored", "qwen3.5-4b", "gpt-oss-20b",
    "gpt-oss-20b-uncensored", "cohere-transcribe", "chatterbox", "chatterbox-turbo",
    "chatterbox-multilingual",
]
CHATS = [  # one virtual model of each chat physical model
    "qwen3.5-9b-fp8-instruct",             # transformers, FP8 block-wise
    "qwen3.5-9b-fp8-uncensored-thinking",  # llamacpp, GGUF + mmproj
    "qwen3.5-4b-thinking",                 # transformers, vision
    "gpt-oss-20b-high",                    # transformers, MXFP4
    "gpt-oss-20b-uncensored-low",          # transformers, MXFP4 (same build)
]
SPEECH = [("Chatterbox", "wav"), ("Chatterbox-Turbo", "mp3"), ("Chatterbox-Multilingual", "flac")]
MAX_SPEECH_SECONDS = 100 / 25 + 2  # max_speech_tokens 100 at 25 tokens a second, + margin


def _env(models_dir: Path) -> dict:
    return dict(os.environ, LLMUX_MODELS_DIR=str(models_dir), HF_HUB_OFFLINE="1",
                TOKENIZERS_PARALLELISM="false")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-models")
    out = subprocess.run([sys.executable, str(MAKE), str(root)], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    assert "9 model(s) built" in out.stdout, out.stdout
    yield root
    shutil.rmtree(root, ignore_errors=True)  # 4 GB; pytest keeps its last three basetemps


@pytest.fixture(scope="module")
def server(models_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("demo-tiny-serve") / "serve.log"
    with serve_process(CONFIG, log, env=_env(models_dir), timeout=90, cwd=REPO) as server:
        yield server.url, server.proc, log


@pytest.fixture(scope="module")
def client(server):
    import openai

    base, _, _ = server
    with openai.OpenAI(base_url=base + "/v1", api_key=KEY, max_retries=0, timeout=180) as c:
        yield c


# --------------------------------------------------------------------------- build, config


def test_build_has_every_model_and_is_idempotent(models_dir):
    for name in PHYSICAL_DIRS:
        assert (models_dir / name / ".llmux-tiny.json").is_file(), name
    gguf = models_dir / "qwen3.5-9b-uncensored"
    assert {p.name for p in gguf.glob("*.gguf")} == {"tiny-qwen35.gguf",
                                                     "mmproj-tiny-qwen35.gguf"}
    # Identical files are shared, not copied.
    assert (models_dir / "gpt-oss-20b-uncensored" / "model.safetensors").stat().st_nlink == 2
    assert (models_dir / "chatterbox-turbo" / "ve.safetensors").samefile(
        models_dir / "chatterbox" / "ve.safetensors")
    again = subprocess.run([sys.executable, str(MAKE), str(models_dir)], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 model(s) built" in again.stdout, again.stdout


def test_check_config_passes(models_dir):
    out = subprocess.run([sys.executable, "-m", "llmux", "check-config", str(CONFIG)], cwd=REPO,
                         env=_env(models_dir), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "16 virtual models on 9 physical models" in out.stdout
    assert str(models_dir) in out.stdout


def test_lists_the_sixteen_models(client):
    import yaml

    production = yaml.safe_load((REPO / "config" / "models.yaml").read_text())
    listed = {m.id for m in client.models.list().data}
    assert listed == set(production["virtual"])


# --------------------------------------------------------------------------- chat


def _usage_ok(usage) -> None:
    assert usage.prompt_tokens > 0
    assert 1 <= usage.completion_tokens <= MAX_TOKENS
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


@pytest.mark.parametrize("model", CHATS)
def test_chat(client, model):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    reply = client.chat.completions.create(model=model, messages=messages, max_tokens=MAX_TOKENS)
    assert reply.object == "chat.completion" and reply.model == model
    assert len(reply.choices) == 1
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason in ("length", "stop", "tool_calls")
    _usage_ok(reply.usage)

    stream = client.chat.completions.create(
        model=model, messages=messages, max_tokens=MAX_TOKENS, stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" and c.model == model for c in chunks)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("length", "stop", "tool_calls")
    assert chunks[-1].usage is not None and not chunks[-1].choices
    _usage_ok(chunks[-1].usage)


def _png(color=(200, 30, 30)) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_image_prompt_to_the_vision_model(client):
    text = {"type": "text", "text": "Describe this image."}
    image = {"type": "image_url", "image_url": {"url": _png()}}
    plain = client.chat.completions.create(
        model="qwen3.5-4b-instruct", max_tokens=MAX_TOKENS,
        messages=[{"role": "user", "content": [text]}])
    seen = client.chat.completions.create(
        model="qwen3.5-4b-instruct", max_tokens=MAX_TOKENS,
        messages=[{"role": "user", "content": [text, image]}])
    _usage_ok(seen.usage)
    assert seen.choices[0].finish_reason in ("length", "stop")
    # The image reached the model: its tokens are part of the prompt.
    assert seen.usage.prompt_tokens > plain.usage.prompt_tokens


# --------------------------------------------------------------------------- audio


def test_transcription(client):
    result = client.audio.transcriptions.create(
        model="cohere-transcribe", file=("tone.wav", sine_wav(1.0), "audio/wav"),
        response_format="verbose_json")
    assert isinstance(result.text, str)
    assert result.language == "en"
    assert result.duration == pytest.approx(1.0, abs=0.05)
    assert result.segments and result.segments[0].end <= 1.0 + 0.05


@pytest.mark.parametrize(("model", "fmt"), SPEECH)
def test_speech(client, model, fmt):
    from llmux.audio.decode import decode_audio

    response = client.audio.speech.create(model=model, voice="alloy", input="Hello there.",
                                          response_format=fmt)
    samples = decode_audio(response.content, 24000)
    seconds = len(samples) / 24000
    assert 0 < seconds <= MAX_SPEECH_SECONDS
    assert abs(samples).max() > 0  # not silence
