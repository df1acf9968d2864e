"""Fixtures: tiny checkpoints of every production layout, built once per session, served by
the real llmux app on a real socket in a background thread, driven with the ``openai``
client."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from llmux.testing import ThreadedServer, write_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from llmux_transformers.tiny import checkpoints as tiny_checkpoints  # noqa: E402

KEY = "sk-llmux-transformers-test-000000"
TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]},
    },
}]

PHYSICAL = {  # name -> (builder, chat format, vision)
    "qwen-text": ("qwen_text", "qwen3_5", False),
    "qwen-vision": ("qwen_vision", "qwen3_5", True),
    "qwen-fp8": ("qwen_fp8", "qwen3_5", False),
    "gpt-oss": ("gpt_oss", "gpt_oss", False),
    "gpt-oss-mxfp4": ("gpt_oss_mxfp4", "gpt_oss", False),
}
VIRTUAL = {
    "qwen-text-thinking": ("qwen-text", {"thinking": True}),
    "qwen-text-instruct": ("qwen-text", {"thinking": False}),
    "qwen-vision-thinking": ("qwen-vision", {"thinking": True}),
    "qwen-fp8-instruct": ("qwen-fp8", {"thinking": False}),
    "gpt-oss-low": ("gpt-oss", {"reasoning_effort": "low"}),
    "gpt-oss-high": ("gpt-oss", {"reasoning_effort": "high"}),
    "gpt-oss-mxfp4-high": ("gpt-oss-mxfp4", {"reasoning_effort": "high"}),
}


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_checkpoints.train_tokenizer()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory, tokenizer) -> Path:
    root = tmp_path_factory.mktemp("models")
    builders = {
        "qwen_text": tiny_checkpoints.build_qwen_text,
        "qwen_vision": tiny_checkpoints.build_qwen_vision,
        "qwen_fp8": tiny_checkpoints.build_qwen_fp8,
        "gpt_oss": tiny_checkpoints.build_gpt_oss,
        "gpt_oss_mxfp4": lambda f, t: tiny_checkpoints.build_gpt_oss(f, t, mxfp4=True),
    }
    for name, (builder, _, _) in PHYSICAL.items():
        folder = root / name
        folder.mkdir()
        builders[builder](folder, tokenizer)
    return root


def models_yaml(models_dir: Path, **options) -> dict:
    physical = {
        name: {
            "type": "llm", "backend": "transformers", "path": name, "vram_gb": 0.5,
            "capabilities": {"vision": vision, "tools": True}, "chat_format": fmt,
            "options": {"max_context": 1024, **options},
        }
        for name, (_, fmt, vision) in PHYSICAL.items()
    }
    virtual = {name: {"physical": p, "behaviour": b} for name, (p, b) in VIRTUAL.items()}
    return {"models_dir": str(models_dir), "vram": {"budget_gb": 16, "reserve_gb": 0.5},
            "physical": physical, "virtual": virtual}


def plugin_manager():
    """llmux's built-ins plus this plugin only (other installed plugins stay out)."""
    import llmux_transformers
    from llmux.testing import plugin_manager as built_ins_and

    return built_ins_and(transformers=llmux_transformers)


@pytest.fixture(scope="session")
def config(tmp_path_factory, models_dir):
    from llmux.config import load_config
    from llmux.runtime import Runtimes

    directory = tmp_path_factory.mktemp("config")
    write_config(directory, models_yaml(models_dir), [{"name": "test", "key": KEY}])
    pm = plugin_manager()
    return load_config(directory, Runtimes(pm)), pm


@pytest.fixture(scope="session")
def server(config):
    from llmux.app import create_app

    cfg, pm = config
    srv = ThreadedServer(create_app(cfg, pm)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def client(server):
    import openai

    return openai.OpenAI(
        base_url=f"http://127.0.0.1:{server.port}/v1", api_key=KEY, max_retries=0, timeout=60
    )


# --------------------------------------------------------------------------- forcing output


class Forcer:
    """A LogitsProcessor that makes the real model emit ``ids`` and then its end token."""

    def __init__(self, ids: list[int], end: int, prompt_len: int) -> None:
        self.ids, self.end, self.start = ids, end, prompt_len

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.start
        token = self.ids[step] if step < len(self.ids) else self.end
        forced = scores.new_full(scores.shape, float("-inf"))
        forced[:, token] = 0.0
        return forced


class Recorder:
    """Installed through ``llmux_transformers.chat.EXTRA_LOGITS_PROCESSORS``: remembers each
    prompt and, when a script is set, forces the model to generate it."""

    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.prompt_lengths: list[int] = []
        self.forced: list[int] = []  # how many tokens each forced script has
        self.script: str | None = None

    def __call__(self, request, tokenizer, prompt_ids):
        self.prompts.append(tokenizer.decode(prompt_ids, skip_special_tokens=False))
        self.prompt_lengths.append(len(prompt_ids))
        if self.script is None:
            return None
        ids = tokenizer(self.script, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids, skip_special_tokens=False) == self.script
        self.forced.append(len(ids))
        fmt = request.chat_format.name
        end = tokenizer.convert_tokens_to_ids("<|im_end|>" if fmt == "qwen3_5" else "<|return|>")
        return Forcer(ids, end, len(prompt_ids))

    @contextmanager
    def forcing(self, script: str):
        self.script = script
        try:
            yield
        finally:
            self.script = None


@pytest.fixture
def recorder():
    from llmux_transformers import chat

    rec = Recorder()
    chat.EXTRA_LOGITS_PROCESSORS.append(rec)
    yield rec
    chat.EXTRA_LOGITS_PROCESSORS.remove(rec)


@pytest.fixture
def generation_ended(monkeypatch):
    """A ``threading.Event`` set whenever a generation on a compute thread has ended."""
    import threading

    from llmux_transformers import chat

    ended = threading.Event()
    generate = chat._generate_in_thread

    def watched(*args):
        try:
            generate(*args)
        finally:
            ended.set()

    monkeypatch.setattr(chat, "_generate_in_thread", watched)
    return ended


# --------------------------------------------------------------------------- speech-to-text


def _load_speech():
    """The core's test speech helper (tests/audio/speech.py), imported by path."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[3] / "tests" / "audio" / "speech.py"
    spec = importlib.util.spec_from_file_location("llmux_test_speech", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


speech = _load_speech()
ASR_LANGUAGES = ["en", "de"]


@pytest.fixture(scope="session")
def asr_dir(tmp_path_factory) -> Path:
    """models_dir with the tiny ``cohere_asr`` checkpoint in ``cohere-asr/``."""
    from llmux_transformers.tiny import build_cohere_asr

    root = tmp_path_factory.mktemp("asr-models")
    build_cohere_asr(root / "cohere-asr")
    return root


@pytest.fixture(scope="session")
def speech_clips(tmp_path_factory) -> dict:
    """Synthetic English and German sentences (``tests/audio/speech.py``, no system tools)
    in the nine formats, and a long clip: ``{(lang, fmt): Clip, "long": Clip}`` (the long
    one is FLAC, over 35 s)."""
    folder = tmp_path_factory.mktemp("asr-speech")
    wavs = {lang: speech.speak(text, lang, folder / f"{lang}.wav")
            for lang, text in speech.TEXT.items()}
    clips = {(lang, fmt): clip
             for lang, wav in wavs.items()
             for fmt, clip in speech.make_clips(folder, wav, lang).items()}
    long = speech.concatenate([wavs["en"], wavs["de"]], folder / "long.wav", repeat=4)
    samples, rate = speech.read_wav(long)
    clips["long"] = speech.Clip(speech.encode(long, "flac", folder / "long.flac"), "flac",
                                len(samples) / rate)
    return clips


def asr_models_yaml(models_dir: Path) -> dict:
    """The tiny ASR model on transformers; a chat and a TTS model on echo (wrong-type tests)."""
    return {
        "models_dir": str(models_dir), "vram": {"budget_gb": 16, "reserve_gb": 0.5},
        "server": {"audio_body_limit_mb": 2},
        "physical": {
            "cohere-asr": {"type": "asr", "backend": "transformers", "path": "cohere-asr",
                           "vram_gb": 0.5, "options": {"languages": ASR_LANGUAGES}},
            "chat": {"type": "llm", "backend": "echo", "path": "chat", "vram_gb": 0.5,
                     "chat_format": "plain"},
            "voice": {"type": "tts", "backend": "echo", "path": "voice", "vram_gb": 0.5},
        },
        "virtual": {
            "cohere-transcribe": {"physical": "cohere-asr", "behaviour": {"language": "en"}},
            "chat": {"physical": "chat"},
            "voice": {"physical": "voice"},
        },
    }


@pytest.fixture(scope="session")
def asr_server(tmp_path_factory, asr_dir):
    from llmux.app import create_app
    from llmux.config import load_config
    from llmux.runtime import Runtimes

    directory = tmp_path_factory.mktemp("asr-config")
    write_config(directory, asr_models_yaml(asr_dir), [{"name": "test", "key": KEY}])
    pm = plugin_manager()
    srv = ThreadedServer(create_app(load_config(directory, Runtimes(pm)), pm)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def asr_client(asr_server):
    import openai

    return openai.OpenAI(base_url=f"http://127.0.0.1:{asr_server.port}/v1", api_key=KEY,
                         max_retries=0, timeout=120)


class Script:
    """A LogitsProcessor making the real ASR model emit ``ids`` and then its end token."""

    def __init__(self, ids: list[int], end: int) -> None:
        self.ids, self.end, self.start = ids, end, None

    def __call__(self, input_ids, scores):
        if self.start is None:
            self.start = input_ids.shape[1]
        step = input_ids.shape[1] - self.start
        forced = scores.new_full(scores.shape, float("-inf"))
        forced[:, self.ids[step] if step < len(self.ids) else self.end] = 0.0
        return forced


class AsrRecorder:
    """Installed through ``llmux_transformers.asr.EXTRA_LOGITS_PROCESSORS``: remembers each
    chunk's decoder prompt (as tokens) and makes the model say ``chunk<i>`` for chunk ``i``
    of a request (random weights never stop by themselves: this keeps the tests fast)."""

    def __init__(self) -> None:
        self.prompts: list[list[str]] = []
        self.requests: list = []
        self.on_chunk = None  # optional callback(request) run for every chunk

    def __call__(self, request, processor, prompt_ids):
        tokenizer = processor.tokenizer
        self.prompts.append(tokenizer.convert_ids_to_tokens(prompt_ids))
        index = sum(r is request for r in self.requests)
        self.requests.append(request)
        if self.on_chunk is not None:
            self.on_chunk(request)
        ids = tokenizer(self.text(index), add_special_tokens=False)["input_ids"]
        return Script(ids, tokenizer.eos_token_id)

    @staticmethod
    def text(index: int) -> str:
        return ["One two three.", "Vier fünf sechs.", "Seven eight nine."][index % 3]


@pytest.fixture
def asr_recorder():
    from llmux_transformers import asr

    rec = AsrRecorder()
    asr.EXTRA_LOGITS_PROCESSORS.append(rec)
    yield rec
    asr.EXTRA_LOGITS_PROCESSORS.remove(rec)
