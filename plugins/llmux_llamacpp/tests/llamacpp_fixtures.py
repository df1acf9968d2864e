"""Fixtures: tiny qwen35 GGUF + mmproj (built once per session), a config directory serving
them through llmux, and the app on a real socket for the official ``openai`` client."""

from __future__ import annotations

import base64
import io
import logging
import os
from pathlib import Path

import pytest

from llmux.testing import write_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import llmux_llamacpp  # noqa: E402
from llmux_llamacpp.tiny import write_mmproj, write_text_model  # noqa: E402
from llmux.config import load_config  # noqa: E402
from llmux.runtime import Runtimes  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
# The Qwen3.5 chat template as the real one renders (shared with the chat-format tests).
TEMPLATE = REPO / "tests" / "chatformats" / "templates" / "qwen3_5.jinja"
KEY = "sk-llmux-llamacpp-test-000000000"
MODEL_FILE = "tiny-qwen35.gguf"
MMPROJ_FILE = "mmproj-tiny-qwen35.gguf"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
CALL = "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n" \
       "<parameter=days>\n2\n</parameter>\n</function>\n</tool_call>"


def gbnf(text: str) -> str:
    """A grammar that makes the model emit exactly ``text``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'root ::= "{escaped}"'


# What the grammars make the real model generate (thinking on: the prompt pre-opened <think>).
ANSWER = "The user greets me.\n</think>\n\nHello! Grüße, 世界."
TOOL_AFTER_THINK = "Paris weather, two days.\n</think>\n\n" + CALL
TOOL_IN_THINK = "I need the weather tool.\n\n" + CALL
# Never ends by itself within n_ctx: ~8000 characters, several thousand tokens.
ENDLESS = "root ::= x{80}\nx ::= [a-z ]{100}"


def png(width: int = 256, height: int = 256, color=(200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("llamacpp-models") / "tiny-qwen35"
    directory.mkdir()
    write_text_model(directory / MODEL_FILE, TEMPLATE.read_text())
    write_mmproj(directory / MMPROJ_FILE)
    return directory


def models_yaml(tiny_dir: Path) -> dict:
    options = {"model_file": MODEL_FILE, "n_ctx": 8192, "n_threads": 2, "seed": 7}
    physical = {
        "tiny-vl": {
            "type": "llm", "backend": "llamacpp", "path": tiny_dir.name, "vram_gb": 0.5,
            "capabilities": {"vision": True, "tools": True}, "chat_format": "qwen3_5",
            "options": {**options, "mmproj_file": MMPROJ_FILE},
        },
        "tiny-text": {
            "type": "llm", "backend": "llamacpp", "path": tiny_dir.name, "vram_gb": 0.5,
            "capabilities": {"vision": False, "tools": True}, "chat_format": "qwen3_5",
            "options": options,
        },
    }

    def grammar(text: str) -> dict:
        behaviour = {"thinking": True, "options": {"grammar": text}}
        return {"physical": "tiny-vl", "behaviour": behaviour}

    virtual = {
        "tiny-thinking": {"physical": "tiny-vl", "behaviour": {"thinking": True}},
        "tiny-instruct": {"physical": "tiny-vl", "behaviour": {"thinking": False}},
        "tiny-text": {"physical": "tiny-text"},
        "tiny-answer": grammar(gbnf(ANSWER)),
        "tiny-tool": grammar(gbnf(TOOL_AFTER_THINK)),
        "tiny-tool-in-think": grammar(gbnf(TOOL_IN_THINK)),
        "tiny-endless": grammar(ENDLESS),
    }
    return {"models_dir": str(tiny_dir.parent), "vram": {"budget_gb": 8, "reserve_gb": 0},
            "physical": physical, "virtual": virtual}


@pytest.fixture(scope="session")
def plugin_manager():
    """Built-ins plus this plugin (the entry-point discovery has its own test)."""
    from llmux.testing import plugin_manager as built_ins_and

    return built_ins_and(llamacpp=llmux_llamacpp)


@pytest.fixture(scope="session")
def llmux_config(tiny_dir, plugin_manager, tmp_path_factory):
    directory = tmp_path_factory.mktemp("llamacpp-config")
    write_config(directory, models_yaml(tiny_dir), [{"name": "t", "key": KEY}])
    return load_config(directory, Runtimes(plugin_manager))


@pytest.fixture
async def server(llmux_config, plugin_manager):
    """llmux on 127.0.0.1 with handler cancellation on, as ``llmux serve`` runs it."""
    from llmux.app import create_app
    from llmux.testing import serve

    async with serve(create_app(llmux_config, plugin_manager)) as base_url:
        yield base_url


@pytest.fixture
async def client(server):
    import openai

    async with openai.AsyncOpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0) as c:
        yield c


@pytest.fixture
def prompts(caplog):
    """The prompts the plugin rendered, in order (from its debug log)."""
    caplog.set_level(logging.DEBUG, logger="llmux_llamacpp")

    def get() -> list[str]:
        import ast

        marker = " prompt: "
        return [
            ast.literal_eval(r.getMessage().split(marker, 1)[1])
            for r in caplog.records
            if r.name == "llmux_llamacpp" and marker in r.getMessage()
        ]

    return get
