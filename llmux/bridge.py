"""Pull a blocking event iterator in a worker thread and hand its events to the event loop.

The runtime's generator runs in a thread; the loop receives events in batches: the worker
appends to a list under a lock and wakes the loop only when the loop is actually waiting,
so a fast producer costs one wake-up per batch rather than one thread hop per token.

A chat answer ends with its :class:`~llmux.types.Usage` event (the ``infer`` contract).
What the runtime does after it is its own bookkeeping (llama.cpp saves an attention-only
model's KV cache for the next turn: about 1 ms per MiB measured on 2 CPU cores, and a
Llama-3-8B shape holds 128 KiB per token, 0.5 GiB at 4k tokens). The iteration ends at the
Usage, so the client gets the end of its answer at once, while the worker finishes that
work (``aclose`` then waits for it without cancelling it; the caller's lease on the model
lasts until then).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Executor
from typing import Any, Callable, Iterator

from .types import Cancellation, Usage

log = logging.getLogger("llmux.bridge")
_SENTINEL = object()


class EventBridge:
    """``async for batch in bridge`` yields lists of events until the iterator ends."""

    def __init__(
        self,
        make_iterator: Callable[[], Iterator[Any]],
        cancel: Cancellation,
        executor: Executor | None,
        *,
        whole: bool = False,
    ) -> None:
        """``whole``: hand everything over in one batch at the end of the answer (one
        wake-up of the loop per request, for answers that are not streamed)."""
        self._make = make_iterator
        self._cancel = cancel
        self._executor = executor
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._items: list[Any] = []
        self._waiter: asyncio.Future | None = None
        self._error: BaseException | None = None
        self._finished = False
        self.answered = False  # the Usage event was handed over: the answer is complete
        self.first_at: float | None = None  # perf_counter() when the first event came
        self._whole = whole
        self.future: asyncio.Future = self._loop.run_in_executor(executor, self._run)

    # ------------------------------------------------------------------ worker thread

    def _run(self) -> None:
        late = 0
        try:
            iterator = self._make()
            for item in iterator:
                if self.answered:
                    late += 1  # the runtime's work after its answer yields nothing more
                    continue
                if isinstance(item, Usage):
                    self.answered = True
                    self._push(item, _SENTINEL)
                    continue
                self._push(item)
                if self._cancel.cancelled:
                    close = getattr(iterator, "close", None)
                    if close is not None:
                        close()
                    break
        except BaseException as exc:  # handed to the loop, re-raised there
            if self.answered:
                log.error("the runtime raised after its answer was complete", exc_info=exc)
            else:
                self._error = exc
        finally:
            if not self.answered:
                self._push(_SENTINEL)
            elif late:
                log.warning("the runtime yielded %d event(s) after Usage (the last event of "
                            "an answer); they were dropped", late)

    def _push(self, *items: Any) -> None:
        with self._lock:
            if self.first_at is None:
                self.first_at = time.perf_counter()
            self._items.extend(items)
            if self._whole and items[-1] is not _SENTINEL:
                return
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
        """Cancel generation (unless the answer is complete) and wait until the worker has
        really stopped.

        The caller holds the model's lease until this returns, so a model is never evicted
        while its runtime is still generating in a thread, or finishing after its answer.
        """
        if not self.answered:
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
