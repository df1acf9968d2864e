"""The worker-thread bridge: batches, errors, and cancellation that waits for the worker."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from llmux.bridge import EventBridge
from llmux.errors import InvalidRequest
from llmux.types import Cancellation


async def test_all_events_arrive_in_order_in_batches():
    def produce():
        for i in range(10_000):
            yield i

    bridge = EventBridge(produce, Cancellation(), None)
    seen, batches = [], 0
    async for batch in bridge:
        seen += batch
        batches += 1
    assert seen == list(range(10_000))
    assert batches < 10_000  # a fast producer is drained in batches, not one hop per item
    await bridge.aclose()


async def test_an_error_raised_by_the_runtime_reaches_the_loop():
    def produce():
        yield 1
        raise InvalidRequest("bad image", param="messages")

    bridge = EventBridge(produce, Cancellation(), None)
    got = []
    with pytest.raises(InvalidRequest):
        async for batch in bridge:
            got += batch
    assert got == [1]


async def test_aclose_cancels_and_waits_for_the_worker():
    cancel = Cancellation()
    stopped = threading.Event()

    def produce():
        try:
            while not cancel.cancelled:
                time.sleep(0.01)
                yield "token"
        finally:
            stopped.set()

    bridge = EventBridge(produce, cancel, None)
    await bridge.__anext__()
    started = time.perf_counter()
    await bridge.aclose()
    assert stopped.is_set()  # the worker finished before aclose returned
    assert time.perf_counter() - started < 1.0


async def test_aclose_survives_being_cancelled_itself():
    cancel = Cancellation()

    def produce():
        while not cancel.cancelled:
            time.sleep(0.05)
            yield 1

    bridge = EventBridge(produce, cancel, None)
    task = asyncio.create_task(bridge.aclose())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert bridge.future.done()


async def test_run_to_completion_waits_for_the_worker_when_cancelled():
    from llmux.bridge import run_to_completion

    cancel = Cancellation()
    finished = threading.Event()

    def work():
        while not cancel.cancelled:
            time.sleep(0.01)
        time.sleep(0.05)  # the runtime needs a moment to stop
        finished.set()
        return "partial"

    task = asyncio.create_task(run_to_completion(None, work, cancel))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancel.cancelled
    assert finished.is_set()  # the lease around it outlived the work
    assert await run_to_completion(None, lambda: 42, Cancellation()) == 42
