"""A REAL upstream: ``llmux serve --config config/demo`` (the echo runtime) in a subprocess;
a tiny real aiohttp server that misbehaves on purpose (misbehaving.py); and an in-process
llmux app whose physical models use the ``upstream`` backend against both."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from llmux.testing import TEST_KEY, free_port, serve_process  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
DEMO_DIR = REPO / "config" / "demo"
UPSTREAM_KEY = "sk-llmux-demo-admin-000000000000"  # config/demo/api_keys.yaml, demo-admin
WRONG_KEY = "sk-upstream-wrong-key-1111111111"
KEY_ENV = "LLMUX_TEST_UPSTREAM_KEY"
WRONG_KEY_ENV = "LLMUX_TEST_WRONG_UPSTREAM_KEY"
AUTH = {"Authorization": f"Bearer {TEST_KEY}"}


@pytest.fixture(scope="session")
def upstream_server(tmp_path_factory):
    """The demo config served by a second llmux process (its log: ``.output()``)."""
    log = tmp_path_factory.mktemp("upstream") / "serve.log"
    env = dict(os.environ, LLMUX_LOAD_PLUGINS="")  # the built-in echo runtime only
    with serve_process(DEMO_DIR, log, env=env, cwd=REPO) as server:
        yield server


@pytest.fixture(scope="session")
def upstream(upstream_server):
    """The real upstream's base URL (with /v1)."""
    return upstream_server.url + "/v1"


@pytest.fixture
async def misbehaving(aiohttp_server):
    """The misbehaving upstream (see misbehaving.py); yields its Behaviour (base_url,
    what it saw)."""
    from misbehaving import Behaviour, create_app

    behaviour = Behaviour()
    server = await aiohttp_server(create_app(behaviour))
    behaviour.base_url = str(server.make_url("/v1"))
    yield behaviour
    behaviour.release.set()  # silent handlers end before the server closes


def models_yaml(base_url: str, models_dir: Path, bad_url: str | None = None) -> dict:
    def physical(model: str, type_: str = "llm", **options) -> dict:
        entry = {"type": type_, "backend": "upstream", "path": "remote",
                 "options": {"base_url": base_url, "model": model, "api_key_env": KEY_ENV,
                             "connect_timeout_s": 1, "first_byte_timeout_s": 10,
                             "max_concurrency": 4, **options}}
        if type_ == "llm":
            entry.update(chat_format="plain", capabilities={"tools": True})
        return entry

    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    physical_models = {
        "remote-instruct": physical("qwen3.5-4b-instruct"),
        "remote-thinking": physical("qwen3.5-4b-thinking"),
        "remote-missing": physical("no-such-model"),
        "remote-text": {**physical("gpt-oss-20b-low"),
                        "capabilities": {"tools": True, "vision": True}},
        "remote-closed": {**physical("qwen3.5-4b-instruct"),
                          "options": {"base_url": closed, "connect_timeout_s": 1}},
        "remote-wrong-key": physical("qwen3.5-4b-instruct", api_key_env=WRONG_KEY_ENV),
        "remote-asr": physical("cohere-transcribe", "asr"),
        "remote-tts": physical("Chatterbox", "tts"),
        "remote-tts-asr": physical("cohere-transcribe", "tts"),  # the upstream's type differs
    }
    virtual = {
        "chat": {"physical": "remote-instruct"},
        "think": {"physical": "remote-thinking"},
        "missing": {"physical": "remote-missing"},
        "text-only": {"physical": "remote-text"},
        "closed": {"physical": "remote-closed"},
        "wrong-key": {"physical": "remote-wrong-key"},
        "transcribe": {"physical": "remote-asr"},
        "transcribe-de": {"physical": "remote-asr", "behaviour": {"language": "de"}},
        "speak": {"physical": "remote-tts"},
        "speak-wrong": {"physical": "remote-tts-asr"},
    }
    if bad_url is not None:
        from misbehaving import BEHAVIOURS

        for name, type_ in BEHAVIOURS.items():
            entry = physical(name, type_, first_byte_timeout_s=0.5)
            entry["options"]["base_url"] = bad_url
            if name == "stall":  # only a cancellation can end this one
                entry["options"]["first_byte_timeout_s"] = 300
            physical_models[f"bad-{name}"] = entry
            virtual[f"bad-{name}"] = {"physical": f"bad-{name}"}
    return {"models_dir": str(models_dir), "vram": {"budget_gb": 16, "reserve_gb": 0.5},
            "physical": physical_models, "virtual": virtual}


def llmux_app(upstream: str, tmp_path: Path, bad_url: str | None = None):
    """The in-process llmux application (the upstream plugin only)."""
    import llmux_upstream

    from llmux.app import create_app
    from llmux.config import load_config
    from llmux.runtime import Runtimes
    from llmux.testing import plugin_manager, write_config

    pm = plugin_manager(upstream=llmux_upstream)
    models = models_yaml(upstream, tmp_path, bad_url)
    config = load_config(write_config(tmp_path / "config", models), Runtimes(pm))
    return create_app(config, pm)


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv(KEY_ENV, UPSTREAM_KEY)
    monkeypatch.setenv(WRONG_KEY_ENV, WRONG_KEY)


@pytest.fixture
async def client(upstream, tmp_path, aiohttp_client, keys):
    """The in-process llmux app behind aiohttp's test client, on the real upstream."""
    return await aiohttp_client(llmux_app(upstream, tmp_path))


@pytest.fixture
async def bad_client(upstream, misbehaving, tmp_path, aiohttp_client, keys):
    """The same, with ``bad-<behaviour>`` models on the misbehaving upstream too."""
    return await aiohttp_client(llmux_app(upstream, tmp_path, misbehaving.base_url))


def openai_client(client):
    """The official ``openai`` client on an aiohttp test client's server."""
    import openai

    return openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=TEST_KEY,
                              max_retries=0)
