"""A loaded model's parallel slots come from its handle when the handle says so.

A backend whose models differ in how many calls they take at once (the ``upstream`` plugin:
each model's ``max_concurrency``) sets ``parallel`` on the handle it returns from ``load``;
the core admits that many calls, and falls back to ``BackendInfo.parallel`` otherwise.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace

from llmux import BackendInfo, PhysicalModel, hookimpl
from llmux.plugins import get_plugin_manager
from llmux.runtime import Runtimes
from llmux.scheduler import ModelManager, NoGpu
from llmux.scheduler.lease import Slot

from .test_manager import until


def slot(handle, backend_parallel: int = 1) -> Slot:
    model = PhysicalModel(name="m", type="llm", backend="b", path="m",
                          models_dir=Path("/nonexistent"), vram_gb=1)
    backend = SimpleNamespace(info=BackendInfo("b", frozenset({"llm"}), parallel=backend_parallel))
    return Slot(model, backend, handle, 1.0, None, None, time.time())


def test_the_handle_parallel_lowers_the_backend_info():
    assert slot(SimpleNamespace(parallel=2), backend_parallel=5).parallel == 2
    # The backend's figure is the most (the thread pool is sized from it).
    assert slot(SimpleNamespace(parallel=5), backend_parallel=2).parallel == 2
    assert slot(SimpleNamespace(parallel=0)).parallel == 1  # at least one


def test_without_an_int_parallel_on_the_handle_the_backend_info_counts():
    assert slot(object(), backend_parallel=3).parallel == 3
    assert slot(SimpleNamespace(parallel=None), backend_parallel=3).parallel == 3
    assert slot(SimpleNamespace(parallel="7"), backend_parallel=3).parallel == 3
    assert slot(SimpleNamespace(parallel=True), backend_parallel=3).parallel == 3


class PerModelPlugin:
    """A backend of at most 8 slots whose handles carry their model's ``slots`` option."""

    @hookimpl
    def backends(self):
        return [BackendInfo("permodel", frozenset({"llm"}), parallel=8)]

    @hookimpl
    def load(self, model, device):
        return SimpleNamespace(parallel=model.options.get("slots", 1))

    @hookimpl
    def unload(self, model, handle):
        return None


async def test_the_manager_admits_as_many_calls_as_the_handle_says():
    pm = get_plugin_manager(load_entry_points=False)
    pm.register(PerModelPlugin(), name="permodel")
    models = {
        name: PhysicalModel(name=name, type="llm", backend="permodel", path=name,
                            models_dir=Path("/nonexistent"), vram_gb=1, options=options)
        for name, options in (("wide", {"slots": 3}), ("narrow", {}))
    }
    mgr = ModelManager(Runtimes(pm), models, budget_gb=16, gpu=NoGpu())
    # (One at a time: the policy keeps one llm resident, so "narrow" swaps "wide" out.)
    for name, parallel in (("wide", 3), ("narrow", 1)):
        leases = [await mgr.acquire(name) for _ in range(parallel)]
        extra = asyncio.create_task(mgr.acquire(name))
        await until(lambda: mgr.snapshot()["waiting"] == 1)
        (entry,) = mgr.snapshot()["loaded"]
        assert entry["model"] == name
        assert entry["parallel"] == parallel and entry["in_flight"] == parallel
        leases[0].release()  # a slot comes free: the waiter gets it
        (await asyncio.wait_for(extra, 2)).release()
        for lease in leases[1:]:
            lease.release()
    await mgr.close()
