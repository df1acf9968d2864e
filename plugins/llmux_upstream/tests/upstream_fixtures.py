"""A REAL upstream: ``llmux serve --config config/demo`` (the echo runtime) in a subprocess,
and an in-process llmux app whose physical models use the ``upstream`` backend against it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from llmux.testing import TEST_KEY, free_port, serve_process  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
DEMO_DIR = REPO / "config" / "demo"
UPSTREAM_KEY = "sk-llmux-demo-admin-000000000000"  # config/demo/api_keys.yaml, demo-admin
KEY_ENV = "LLMUX_TEST_UPSTREAM_KEY"
AUTH = {"Authorization": f"Bearer {TEST_KEY}"}


@pytest.fixture(scope="session")
def upstream(tmp_path_factory):
    """The demo config served by a second llmux process; yields its base URL (with /v1)."""
    log = tmp_path_factory.mktemp("upstream") / "serve.log"
    env = dict(os.environ, LLMUX_LOAD_PLUGINS="")  # the built-in echo runtime only
    with serve_process(DEMO_DIR, log, env=env, cwd=REPO) as server:
        yield server.url + "/v1"


def models_yaml(base_url: str, models_dir: Path) -> dict:
    def physical(model: str, **options) -> dict:
        return {"type": "llm", "backend": "upstream", "path": "remote", "chat_format": "plain",
                "capabilities": {"tools": True},
                "options": {"base_url": base_url, "model": model, "api_key_env": KEY_ENV,
                            "connect_timeout_s": 1, "first_byte_timeout_s": 10,
                            "max_concurrency": 4, **options}}

    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    return {
        "models_dir": str(models_dir),
        "vram": {"budget_gb": 16, "reserve_gb": 0.5},
        "physical": {
            "remote-instruct": physical("qwen3.5-4b-instruct"),
            "remote-thinking": physical("qwen3.5-4b-thinking"),
            "remote-missing": physical("no-such-model"),
            "remote-text": {**physical("gpt-oss-20b-low"),
                            "capabilities": {"tools": True, "vision": True}},
            "remote-closed": {**physical("qwen3.5-4b-instruct"),
                              "options": {"base_url": closed, "connect_timeout_s": 1}},
        },
        "virtual": {
            "chat": {"physical": "remote-instruct"},
            "think": {"physical": "remote-thinking"},
            "missing": {"physical": "remote-missing"},
            "text-only": {"physical": "remote-text"},
            "closed": {"physical": "remote-closed"},
        },
    }


@pytest.fixture
async def client(upstream, tmp_path, aiohttp_client, monkeypatch):
    """The in-process llmux app (upstream plugin only) behind aiohttp's test client."""
    import llmux_upstream
    from llmux.app import create_app
    from llmux.config import load_config
    from llmux.runtime import Runtimes
    from llmux.testing import plugin_manager, write_config

    monkeypatch.setenv(KEY_ENV, UPSTREAM_KEY)
    pm = plugin_manager(upstream=llmux_upstream)
    config = load_config(write_config(tmp_path / "config", models_yaml(upstream, tmp_path)),
                         Runtimes(pm))
    return await aiohttp_client(create_app(config, pm))
