"""Per-model concurrency: a model's parallel slots, waiters on the event loop, shutdown.

The echo backend declares ``echo.PARALLEL`` slots; these tests lower it before building the
Runtimes (or the app), as a real runtime declares 1.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from llmux.appstate import EXECUTOR, MANAGER
from llmux.builtin import echo
from llmux.errors import ServiceUnavailable
from llmux.metrics import Metrics
from llmux.plugins import get_plugin_manager
from llmux.runtime import Runtimes
from llmux.scheduler import ModelManager, NoGpu

from .helpers import (
    ADMIN,
    USER,
    echo_model,
    health,
    open_stream,
    production_models,
    speak,
    transcribe,
)
from .test_manager import loaded, until


def serial_runtimes(monkeypatch, parallel: int = 1) -> Runtimes:
    monkeypatch.setattr(echo, "PARALLEL", parallel)
    return Runtimes(get_plugin_manager(load_entry_points=False))


async def test_a_model_serves_at_most_its_parallel_slots(monkeypatch):
    metrics = Metrics()
    mgr = ModelManager(serial_runtimes(monkeypatch, 2), production_models(), budget_gb=16,
                       gpu=NoGpu(), metrics=metrics)
    first, second = await mgr.acquire("qwen3.5-4b"), await mgr.acquire("qwen3.5-4b")
    third = asyncio.create_task(mgr.acquire("qwen3.5-4b"))
    await until(lambda: mgr.snapshot()["waiting"] == 1)
    snap = mgr.snapshot()
    assert snap["waiting_by_model"] == {"qwen3.5-4b": 1}
    assert snap["loaded"][0]["in_flight"] == 2 and snap["loaded"][0]["parallel"] == 2
    assert snap["loaded"][0]["waiting"] == 1
    body, _ = metrics.render()
    assert b'llmux_requests_waiting{model="qwen3.5-4b"} 1.0' in body
    assert b'llmux_requests_in_flight{model="qwen3.5-4b"} 2.0' in body
    # A newcomer does not jump the queue, even the moment a slot comes free.
    first.release()
    late = asyncio.create_task(mgr.acquire("qwen3.5-4b"))
    third_lease = await asyncio.wait_for(third, 2)
    await until(lambda: mgr.snapshot()["waiting"] == 1)
    assert not late.done()
    second.release()
    (await asyncio.wait_for(late, 2)).release()
    third_lease.release()
    assert mgr.snapshot()["waiting"] == 0 and mgr.snapshot()["loaded"][0]["in_flight"] == 0
    assert echo.RECORDS["qwen3.5-4b"].loads == 1
    await mgr.close()


async def test_waiters_for_a_busy_model_count_toward_max_waiting(monkeypatch):
    mgr = ModelManager(serial_runtimes(monkeypatch), production_models(), budget_gb=16,
                       max_waiting=2, gpu=NoGpu())
    busy = await mgr.acquire("qwen3.5-4b")
    waiting = [asyncio.create_task(mgr.acquire("qwen3.5-4b")) for _ in range(2)]
    await until(lambda: mgr.snapshot()["waiting"] == 2)
    with pytest.raises(ServiceUnavailable) as info:
        await mgr.acquire("qwen3.5-4b")
    assert info.value.retry_after >= 1 and "max_waiting" in info.value.message
    busy.release()
    for task in waiting:
        (await asyncio.wait_for(task, 2)).release()
    await mgr.close()


async def test_a_load_admits_no_more_than_the_slots(monkeypatch):
    models = {"m": echo_model("m", "llm", 4, load_seconds=0.05)}
    mgr = ModelManager(serial_runtimes(monkeypatch, 3), models, budget_gb=16, gpu=NoGpu())
    tasks = [asyncio.create_task(mgr.acquire("m")) for _ in range(7)]
    await until(lambda: sum(t.done() for t in tasks) == 3)
    assert mgr.snapshot()["waiting"] == 4 and mgr.snapshot()["loaded"][0]["in_flight"] == 3
    for _ in range(7):  # release in turn; every waiter gets through, in order
        done = next(t for t in tasks if t.done() and not t.result().released)
        done.result().release()
        await asyncio.sleep(0)
    await until(lambda: all(t.done() and t.result().released for t in tasks))
    assert echo.RECORDS["m"].loads == 1
    await mgr.close()


async def test_a_swap_queued_behind_waiters_for_a_busy_model_keeps_its_place(monkeypatch):
    mgr = ModelManager(serial_runtimes(monkeypatch), production_models(), budget_gb=16,
                       gpu=NoGpu())
    busy = await mgr.acquire("qwen3.5-4b")
    before = asyncio.create_task(mgr.acquire("qwen3.5-4b"))
    await until(lambda: mgr.snapshot()["waiting"] == 1)
    swap = asyncio.create_task(mgr.acquire("qwen3.5-9b-fp8"))
    await until(lambda: mgr.snapshot()["waiting"] == 2)
    after = asyncio.create_task(mgr.acquire("qwen3.5-4b"))  # behind the swap
    await until(lambda: mgr.snapshot()["waiting"] == 3)
    busy.release()
    (await asyncio.wait_for(before, 2)).release()
    (await asyncio.wait_for(swap, 2)).release()
    (await asyncio.wait_for(after, 2)).release()
    assert [e["model"] for e in mgr.events if e["event"] == "load"] == [
        "qwen3.5-4b", "qwen3.5-9b-fp8", "qwen3.5-4b"]
    assert all(e["in_flight"] == 0 for e in mgr.events if e["event"] == "evict")
    await mgr.close()


# --------------------------------------------------------------------------- shutdown


async def test_close_waits_for_running_calls_before_unloading(runtimes):
    mgr = ModelManager(runtimes, production_models(), budget_gb=16, gpu=NoGpu(),
                       drain_timeout_s=30)
    lease = await mgr.acquire("qwen3.5-4b")
    waiter_for_load = asyncio.create_task(mgr.acquire("gpt-oss-20b"))
    await until(lambda: mgr.snapshot()["waiting"] == 1)
    closing = asyncio.create_task(mgr.close())
    with pytest.raises(ServiceUnavailable):
        await asyncio.wait_for(waiter_for_load, 2)
    await asyncio.sleep(0.1)
    assert not closing.done() and echo.RECORDS["qwen3.5-4b"].unloads == 0
    lease.release()
    await asyncio.wait_for(closing, 5)
    assert echo.RECORDS["qwen3.5-4b"].unloads == 1 and loaded(mgr) == []


async def test_close_never_unloads_under_a_running_call(runtimes, caplog):
    mgr = ModelManager(runtimes, production_models(), budget_gb=16, gpu=NoGpu(),
                       drain_timeout_s=0.1)
    await mgr.load_now("chatterbox")
    lease = await mgr.acquire("qwen3.5-4b")
    with caplog.at_level(logging.WARNING, logger="llmux.scheduler"):
        await asyncio.wait_for(mgr.close(), 5)  # the grace runs out
    assert echo.RECORDS["qwen3.5-4b"].unloads == 0 and echo.RECORDS["chatterbox"].unloads == 1
    assert loaded(mgr) == ["qwen3.5-4b"]
    assert "qwen3.5-4b still serves 1 call(s)" in caplog.text
    lease.release()


# --------------------------------------------------------------------------- through HTTP


async def test_a_crowd_for_one_model_does_not_stall_the_others(aiohttp_client, make_app,
                                                               monkeypatch):
    monkeypatch.setattr(echo, "PARALLEL", 1)
    app = make_app(llm_options={"token_delay": 0.01, "repeat": 1000}, max_waiting=20)
    client = await aiohttp_client(app, server_kwargs={"handler_cancellation": True})
    for name in ("qwen3.5-4b", "chatterbox", "cohere-transcribe"):
        async with client.post(f"/v1/admin/models/{name}/load", headers=ADMIN) as resp:
            assert resp.status == 200
    holder = await open_stream(client, "qwen3.5-4b-instruct")  # a long stream: the one slot

    async def one(i: int) -> tuple[int, str | None, dict]:
        body = {"model": "qwen3.5-4b-instruct", "stream": i % 2 == 0, "max_tokens": 2,
                "messages": [{"role": "user", "content": f"request {i}"}]}
        async with client.post("/v1/chat/completions", json=body, headers=USER) as resp:
            await resp.read()
            return resp.status, resp.headers.get("Retry-After"), (
                await resp.json() if resp.status != 200 else {})

    async with asyncio.timeout(120):
        crowd = [asyncio.create_task(one(i)) for i in range(200)]
        await until(lambda: sum(t.done() for t in crowd) == 180, timeout=60)
        # While the crowd waits (on the event loop), the other models and /health answer.
        await speak(client, "Chatterbox")
        await transcribe(client)
        snap = await health(client)
        assert snap["waiting"] == 20 and snap["waiting_by_model"] == {"qwen3.5-4b": 20}
        llm = next(m for m in snap["loaded"] if m["model"] == "qwen3.5-4b")
        assert llm["in_flight"] == 1 and llm["parallel"] == 1 and llm["waiting"] == 20
        async with client.get("/metrics") as resp:
            text = await resp.text()
        assert 'llmux_requests_waiting{model="qwen3.5-4b"} 20.0' in text
        assert 'llmux_requests_in_flight{model="qwen3.5-4b"} 1.0' in text
        # No thread was taken by a waiter: the model's threads hold its running call only.
        slot = app[MANAGER].ledger.loaded["qwen3.5-4b"]
        assert len(slot.executor._threads) == 1
        assert len(app[EXECUTOR]._threads) <= 16  # the shared pool runs no model work
        holder.close()  # the long stream ends; the crowd goes through, one at a time
        results = await asyncio.gather(*crowd)
    statuses = [status for status, _, _ in results]
    assert statuses.count(200) == 20 and statuses.count(503) == 180
    for status, retry_after, body in results:
        if status == 503:
            assert retry_after is not None and int(retry_after) >= 1
            assert body["error"]["type"] == "server_error"
            assert "max_waiting" in body["error"]["message"]
    assert echo.RECORDS["qwen3.5-4b"].max_active == 1  # one call at a time, as declared
    snap = await health(client)
    assert snap["waiting"] == 0 and all(m["in_flight"] == 0 for m in snap["loaded"])
