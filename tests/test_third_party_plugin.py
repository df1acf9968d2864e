"""A runtime from another distribution, installed with pip, found through its entry point."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from llmux.app import create_app
from llmux.config import load_config
from llmux.plugins import get_plugin_manager
from llmux.runtime import Runtimes

from .conftest import AUTH, REPO, write_config


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(REPO / "tests" / "third_party_plugin")],
        check=True, timeout=300,
    )
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        sys.modules.pop("llmux_reverse", None)
        importlib.invalidate_caches()


async def test_a_pip_installed_plugin_serves_a_model(installed_plugin, tmp_path, aiohttp_client):
    pm = get_plugin_manager()
    assert pm.get_plugin("reverse") is not None  # registered under its entry-point name
    runtimes = Runtimes(pm)
    assert runtimes.get("reverse").plugin_name == "reverse"
    directory = write_config(tmp_path, {
        "models_dir": str(tmp_path),
        "physical": {"mirror": {"type": "llm", "backend": "reverse", "path": "mirror",
                                "vram_gb": 1, "chat_format": "plain",
                                "options": {"upper": True}}},
        "virtual": {"mirror-chat": {"physical": "mirror"}},
    })
    config = load_config(directory, runtimes)
    client = await aiohttp_client(create_app(config, pm))
    resp = await client.post("/v1/chat/completions", headers=AUTH, json={
        "model": "mirror-chat", "messages": [{"role": "user", "content": "stressed"}]})
    assert resp.status == 200
    assert (await resp.json())["choices"][0]["message"]["content"] == "DESSERTS"
    health = await (await client.get("/health")).json()
    assert [m["model"] for m in health["loaded"]] == ["mirror"]
    assert "reverse" in health["backends"]


def test_its_options_are_validated_by_its_own_schema(installed_plugin, tmp_path):
    from llmux.errors import ConfigError

    directory = write_config(tmp_path, {
        "physical": {"mirror": {"type": "llm", "backend": "reverse", "path": "m", "vram_gb": 1,
                                "chat_format": "plain", "options": {"upper": "yes"}}},
        "virtual": {"mirror-chat": {"physical": "mirror"}},
    })
    with pytest.raises(ConfigError) as info:
        load_config(directory, Runtimes(get_plugin_manager()))
    assert info.value.errors == [
        "models.yaml::$.physical.mirror.options.upper: 'yes' is not of type 'boolean'"
    ]


def test_load_plugins_env_narrows_discovery(installed_plugin, monkeypatch):
    monkeypatch.setenv("LLMUX_LOAD_PLUGINS", "")
    assert not Runtimes(get_plugin_manager()).has("reverse")
    monkeypatch.setenv("LLMUX_LOAD_PLUGINS", "reverse")
    assert Runtimes(get_plugin_manager()).has("reverse")
