"""``POST /v1/admin/bench`` holds its lease until its worker has really stopped: a client
that leaves cancels the runs, and the lease is released only after the work ended. Ordering
is checked with events, never with durations."""

from __future__ import annotations

import asyncio
import threading

import yaml

from llmux.app import create_app
from llmux.appstate import MANAGER
from llmux.config import load_config
from llmux.plugins import get_plugin_manager
from llmux.routes import bench as bench_route
from llmux.runtime import Runtimes
from llmux.scheduler.gpu import FakeGpu
from llmux.types import Cancellation

from .scheduler.helpers import ADMIN, models_yaml

WAIT_S = 60  # a bound on a hung test, never a measurement


def _app(tmp_path):
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "models.yaml").write_text(yaml.safe_dump(models_yaml()))
    keys = [{"name": "admin", "key": ADMIN["Authorization"][7:], "admin": True}]
    (directory / "api_keys.yaml").write_text(yaml.safe_dump({"keys": keys}))
    pm = get_plugin_manager(load_entry_points=False)
    config = load_config(directory, Runtimes(pm))
    return create_app(config, pm, gpu=FakeGpu())


async def test_a_client_that_leaves_the_bench_keeps_the_lease_until_the_work_ended(
        aiohttp_client, tmp_path, monkeypatch):
    app = _app(tmp_path)
    client = await aiohttp_client(app, server_kwargs={"handler_cancellation": True})
    manager = app[MANAGER]
    started, finish = threading.Event(), threading.Event()
    order: list[str] = []
    seen: list[Cancellation] = []

    def measure(backend, model, handle, **kw):
        seen.append(backend.cancel)
        started.set()
        assert backend.cancel.wait(WAIT_S)  # the client's leaving reaches the runs ...
        assert finish.wait(WAIT_S)  # ... and the worker is still at it
        order.append("work ended")
        return {}

    release = manager.release
    released = asyncio.Event()

    def recording_release(lease):
        order.append("lease released")
        released.set()
        return release(lease)

    monkeypatch.setattr(bench_route, "measure", measure)
    monkeypatch.setattr(manager, "release", recording_release)
    loop = asyncio.get_running_loop()
    body = {"model": "qwen3.5-4b", "device": "cuda", "runs": 1}
    call = asyncio.ensure_future(client.post("/v1/admin/bench", json=body, headers=ADMIN))
    assert await loop.run_in_executor(None, started.wait, WAIT_S)
    call.cancel()  # the client leaves
    assert await loop.run_in_executor(None, seen[0].wait, WAIT_S)
    assert order == []  # cancelled, and the lease is still held while the worker runs
    finish.set()
    await asyncio.wait_for(released.wait(), WAIT_S)
    assert order == ["work ended", "lease released"]
