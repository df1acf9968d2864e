"""Fixtures: tiny checkpoints of every production layout, built once per session, served by
the real llmux app on a real socket in a background thread, driven with the ``openai``
client."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import tiny_checkpoints  # noqa: E402

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
    from llmux.plugins import get_plugin_manager

    pm = get_plugin_manager(load_entry_points=False)
    pm.register(llmux_transformers, name="transformers")
    return pm


@pytest.fixture(scope="session")
def config(tmp_path_factory, models_dir):
    from llmux.config import load_config
    from llmux.runtime import Runtimes

    directory = tmp_path_factory.mktemp("config")
    (directory / "models.yaml").write_text(yaml.safe_dump(models_yaml(models_dir)))
    (directory / "api_keys.yaml").write_text(
        yaml.safe_dump({"keys": [{"name": "test", "key": KEY}]})
    )
    pm = plugin_manager()
    return load_config(directory, Runtimes(pm)), pm


class Server:
    """The llmux app on 127.0.0.1 in its own event loop thread."""

    def __init__(self, app) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    def _serve(self) -> None:
        from aiohttp import web

        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(self.app, handler_cancellation=True)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        self.loop.run_until_complete(site.start())
        self.ready.set()
        self.loop.run_forever()

    def start(self) -> "Server":
        self.thread.start()
        assert self.ready.wait(30), "the llmux app did not start"
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def call(self, coro, timeout: float = 60):
        """Run ``coro`` on the server's loop (e.g. to inspect the model manager)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@pytest.fixture(scope="session")
def server(config):
    from llmux.app import create_app

    cfg, pm = config
    srv = Server(create_app(cfg, pm)).start()
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
