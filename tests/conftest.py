"""Shared fixtures: config directories, the app on the demo config, a real TCP server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from llmux import testing  # noqa: E402
from llmux.app import create_app  # noqa: E402
from llmux.config import load_config  # noqa: E402
from llmux.plugins import get_plugin_manager  # noqa: E402
from llmux.runtime import Runtimes  # noqa: E402
from llmux.testing import free_port, serve  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / "config" / "demo"
DEMO_KEY = "sk-llmux-demo-0000000000000000"
DEMO_ADMIN_KEY = "sk-llmux-demo-admin-000000000000"
AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}


def write_config(directory: Path, models: dict, keys: list[dict] | None = None) -> Path:
    """models.yaml and api_keys.yaml in ``directory``; by default the demo's two keys."""
    keys = keys or [{"name": "test", "key": DEMO_KEY},
                    {"name": "admin", "key": DEMO_ADMIN_KEY, "admin": True}]
    return testing.write_config(directory, models, keys)


def demo_models() -> dict:
    return yaml.safe_load((DEMO_DIR / "models.yaml").read_text())


@pytest.fixture
def builtin_pm():
    return get_plugin_manager(load_entry_points=False)


@pytest.fixture
def demo_config(builtin_pm):
    return load_config(DEMO_DIR, Runtimes(builtin_pm))


@pytest.fixture
async def demo_client(aiohttp_client, demo_config, builtin_pm):
    return await aiohttp_client(create_app(demo_config, builtin_pm))


@pytest.fixture
def make_client(aiohttp_client, tmp_path, builtin_pm):
    """``await make_client(models_dict)``: the app on a config written to a temp dir."""

    async def make(models: dict, keys: list[dict] | None = None):
        directory = write_config(tmp_path / "config", models, keys)
        config = load_config(directory, Runtimes(builtin_pm))
        return await aiohttp_client(create_app(config, builtin_pm))

    return make


@pytest.fixture
async def demo_server(demo_config, builtin_pm):
    """The demo app on a real socket, for clients that bring their own HTTP stack."""
    async with serve(create_app(demo_config, builtin_pm)) as base_url:
        yield base_url
