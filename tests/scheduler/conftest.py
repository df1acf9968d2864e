"""Echo models of the production sizes, a Runtimes over the built-in plugins, a manager."""

from __future__ import annotations

import pytest
import yaml

from llmux.app import create_app
from llmux.builtin import echo
from llmux.config import load_config
from llmux.plugins import get_plugin_manager
from llmux.runtime import Runtimes
from llmux.scheduler import ModelManager, NoGpu

from .helpers import ADMIN, USER, models_yaml


@pytest.fixture(scope="session")
def runtimes() -> Runtimes:
    return Runtimes(get_plugin_manager(load_entry_points=False))


@pytest.fixture(autouse=True)
def clean_records():
    echo.RECORDS.clear()
    yield
    echo.RECORDS.clear()


@pytest.fixture
async def manager(runtimes):
    from .helpers import production_models

    mgr = ModelManager(runtimes, production_models(), budget_gb=16, reserve_gb=0.5,
                       max_waiting=64, gpu=NoGpu())
    await mgr.start()
    yield mgr
    await mgr.close()


@pytest.fixture(scope="session")
def flaky_runtimes() -> Runtimes:
    from .fakes import FlakyPlugin

    pm = get_plugin_manager(load_entry_points=False)
    pm.register(FlakyPlugin(), name="flaky")
    return Runtimes(pm)


@pytest.fixture
def flaky():
    from .fakes import STATE

    STATE.reset()
    yield STATE
    assert STATE.violations == []


# --------------------------------------------------------------------------- HTTP


@pytest.fixture
def make_app(tmp_path):
    def make(**kwargs):
        directory = tmp_path / "config"
        directory.mkdir(exist_ok=True)
        (directory / "models.yaml").write_text(yaml.safe_dump(models_yaml(**kwargs)))
        keys = [{"name": "user", "key": USER["Authorization"][7:]},
                {"name": "admin", "key": ADMIN["Authorization"][7:], "admin": True}]
        (directory / "api_keys.yaml").write_text(yaml.safe_dump({"keys": keys}))
        pm = get_plugin_manager(load_entry_points=False)
        config = load_config(directory, Runtimes(pm))
        return create_app(config, pm, gpu=NoGpu())

    return make


@pytest.fixture
async def client(aiohttp_client, make_app):
    return await aiohttp_client(make_app(), server_kwargs={"handler_cancellation": True})
