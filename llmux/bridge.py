"""Pull a blocking event iterator in a worker thread and hand its events to the event loop.

The runtime's generator runs in a thread; the loop receives events in batches: the worker
appends to a list under a lock and wakes the loop only when the loop is actually waiting,
so a fast producer costs one wake-up per batch rather than one thread hop per token.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Executor
from typing import Any, Callable, Iterator

from .types import Cancellation

_SENTINEL = object()


class EventBridge:
    """``async for batch in bridge`` yields lists of events until the iterator ends."""

    def __init__(
        self,
        make_iterator: Callable[[], Iterator[Any]],
        cancel: Cancellation,
        executor: Executor | None,
    ) -> None:
        self._make = make_iterator
        self._cancel = cancel
        self._executor = executor
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._items: list[Any] = []
        self._waiter: asyncio.Future | None = None
        self._error: BaseException | None = None
        self._finished = False
        self.future: asyncio.Future = self._loop.run_in_executor(executor, self._run)

    # ------------------------------------------------------------------ worker thread

    def _run(self) -> None:
        try:
            iterator = self._make()
            for item in iterator:
                self._push(item)
                if self._cancel.cancelled:
                    close = getattr(iterator, "close", None)
                    if close is not None:
                        close()
                    break
        except BaseException as exc:  # handed to the loop, re-raised there
            self._error = exc
        finally:
            self._push(_SENTINEL)

    def _push(self, item: Any) -> None:
        with self._lock:
            self._items.append(item)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._loop.call_soon_threadsafe(_wake, waiter)

    # ------------------------------------------------------------------ event loop

    def __aiter__(self):
        return self

    async def __anext__(self) -> list[Any]:
        while True:
            if self._finished:
                # Events that came before a runtime error are delivered first, then the error.
                error, self._error = self._error, None
                if error is not None:
                    raise error
                raise StopAsyncIteration
            with self._lock:
                items, self._items = self._items, []
                if not items:
                    waiter = self._waiter = self._loop.create_future()
            if items:
                if items[-1] is _SENTINEL:
                    self._finished = True
                    items.pop()
                    if not items:
                        continue
                return items
            await waiter

    async def aclose(self) -> None:
        """Cancel generation and wait until the worker has really stopped.

        The caller holds the model's lease until this returns, so a model is never evicted
        while its runtime is still generating in a thread.
        """
        self._cancel.cancel()
        interrupted = False
        while not self.future.done():
            try:
                await asyncio.shield(self.future)
            except asyncio.CancelledError:
                interrupted = True
            except BaseException:
                break
        if interrupted:
            raise asyncio.CancelledError


def _wake(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def run_to_completion(executor: Executor | None, fn: Callable[[], Any],
                            cancel: Cancellation) -> Any:
    """Run one blocking call (a transcription, a synthesis) in a worker thread.

    If the awaiting task is cancelled (the client left), ``cancel`` is set and the worker is
    still waited for before the cancellation propagates, so the caller's lease on the model
    outlives the work that uses it.
    """
    future = asyncio.get_running_loop().run_in_executor(executor, fn)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        cancel.cancel()
        while not future.done():
            try:
                await asyncio.shield(future)
            except asyncio.CancelledError:
                continue
            except BaseException:
                break
        raise
