"""The async model manager: leases, a FIFO admission queue, loads and evictions.

One background task, the admitter, makes every load and unload (under an asyncio lock), so
there is never more than one at a time and a client that leaves never interrupts a load.
Admission order (docs/scheduling.md): FIFO, except that a request for a model that is loaded,
not about to be evicted and has a free parallel slot is admitted at once, and when a model
finishes loading the requests queued for it are admitted together (up to its slots).

Each loaded model serves at most ``parallel`` calls at once (its backend's
``BackendInfo.parallel``); a lease is one such call. Requests beyond that wait here, on the
event loop, in the same bounded queue as requests waiting for a load — never in a worker
thread — so a crowd for one model cannot starve the executor that every model shares.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, deque
from typing import Any, Iterable, Mapping

from ..errors import InsufficientVram, LlmuxError, ModelNotFound, ServiceUnavailable
from ..types import PhysicalModel
from .gpu import Gpu, probe_gpu
from .ledger import Ledger
from .lease import Lease, LeaseContext, Slot, Waiter
from .policy import Action, Decision, decide

log = logging.getLogger("llmux.scheduler")


class ModelManager:
    def __init__(self, runtimes, physical: Mapping[str, PhysicalModel], *,
                 budget_gb: float | None = None, reserve_gb: float = 0.5, max_waiting: int = 64,
                 metrics=None, gpu: Gpu | None = None, release_timeout_s: float = 10.0,
                 drain_timeout_s: float = 10.0) -> None:
        self.runtimes = runtimes
        self.physical = dict(physical)
        self.gpu = gpu if gpu is not None else probe_gpu()
        self.ledger = Ledger(runtimes, self.physical, self.gpu, budget_gb=budget_gb,
                             reserve_gb=reserve_gb, metrics=metrics,
                             release_timeout_s=release_timeout_s)
        self.max_waiting = max_waiting
        self.metrics = metrics
        self.drain_timeout_s = drain_timeout_s
        self.events = self.ledger.events  # evict / unload / load / load_failed, in order
        self._queue: deque[Waiter] = deque()
        self._waiting: Counter[str] = Counter()  # lease waiters in the queue, by model
        self._doomed: set[str] = set()  # loaded models that the first blocked load will evict
        self._unscanned = False  # a waiter joined since the last scan: no fast path until then
        self._loading: str | None = None
        self._lock = asyncio.Lock()
        self._kick = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closed = False

    # ------------------------------------------------------------------ interface

    def lease(self, name: str) -> LeaseContext:
        """``async with mgr.lease(name) as lease``: wait for admission, hold the model."""
        return LeaseContext(self, name)

    async def acquire(self, name: str, *, reason: str = "request") -> Lease:
        """Wait until ``name`` is loaded and admit this request; release with :meth:`release`."""
        if self._closed:
            raise ServiceUnavailable("llmux is shutting down", retry_after=5)
        model = self._model(name)
        self.runtimes.get(model.backend)  # BackendNotInstalled, before any wait
        fit = self.ledger.fits.get(name)
        if fit is not None and fit.problem:
            raise InsufficientVram(fit.problem)
        self._ensure_task()
        slot = self.ledger.loaded.get(name)
        if slot is not None and not (slot.full or slot.unloading or self._unscanned
                                     or self._waiting[name] or name in self._doomed):
            return self._grant(slot)
        future = asyncio.get_running_loop().create_future()
        return await self._wait(Waiter(name, "lease", future, reason))

    def release(self, lease: Lease) -> None:
        if lease.released:
            return
        lease.released = True
        lease.slot.in_flight = max(0, lease.slot.in_flight - 1)
        if self.metrics:
            self.metrics.lease_ended(lease.model.name)
        self._kick.set()  # a parallel slot came free (or the model went idle)

    async def start(self, preload: Iterable[str] = ()) -> None:
        """Size every model, start the admitter and load the ``preload`` models (a failure
        is logged only)."""
        await self.ledger.fit_all()
        self._ensure_task()
        for name in preload:
            try:
                await self.load_now(name, reason="preload")
            except LlmuxError as exc:
                log.error("preload of %s failed: %s", name, exc)

    async def load_now(self, name: str, *, reason: str = "admin") -> None:
        self.release(await self.acquire(name, reason=reason))

    async def unload_now(self, name: str) -> bool:
        """Unload ``name`` once its leases end (new requests queue behind); False if not loaded."""
        self._model(name)
        if name not in self.ledger.loaded:
            return False
        self._ensure_task()
        return await self._wait(Waiter(name, "unload", asyncio.get_running_loop().create_future()))

    async def close(self) -> None:
        """Fail the waiters, let the leases drain (up to ``drain_timeout_s``), then unload
        every model that no call is using. A model still in use after the grace stays loaded
        (the process's exit frees it): a runtime is never unloaded under a running call."""
        self._closed = True
        for waiter in list(self._queue):
            if not waiter.future.done():
                waiter.future.set_exception(ServiceUnavailable("llmux is shutting down",
                                                               retry_after=5))
        self._queue.clear()
        self._waiting.clear()
        self._sync_metrics()
        async with self._lock:
            if self._task is not None:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            deadline = time.monotonic() + self.drain_timeout_s
            while any(s.in_flight for s in self.ledger.loaded.values()):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            for name in self.ledger.in_priority_order():
                slot = self.ledger.loaded[name]
                if slot.in_flight:
                    log.warning("shutdown: %s still serves %d call(s) after %.0f s; left loaded",
                                name, slot.in_flight, self.drain_timeout_s)
                    continue
                await self.ledger.unload(name, "shutdown")
        self.ledger.pool.shutdown(wait=False)

    def snapshot(self) -> dict:
        snap = self.ledger.snapshot()
        for entry in snap["loaded"]:
            entry["waiting"] = self._waiting[entry["model"]]
        by_model = {name: n for name, n in self._waiting.items() if n}
        return {**snap, "waiting": len(self._queue), "waiting_by_model": by_model,
                "loading": self._loading}

    def vram_of(self, name: str) -> float:
        return self.ledger.vram_of(name)

    def fit_of(self, name: str):
        """The model's :class:`llmux.sizing.Fit`, once sized (at start), else None."""
        return self.ledger.fits.get(name)

    def model(self, name: str) -> PhysicalModel:
        """The physical model as it is loaded: with its fitted context."""
        return self._model(name)

    # ------------------------------------------------------------------ waiting

    def _model(self, name: str) -> PhysicalModel:
        try:
            return self.physical[name]
        except KeyError:
            raise ModelNotFound(f"the physical model {name!r} does not exist") from None

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._admit(), name="llmux-admitter")

    def _grant(self, slot: Slot) -> Lease:
        slot.in_flight += 1
        if self.metrics:
            self.metrics.lease_started(slot.model.name)
        return Lease(self, slot)

    async def _wait(self, waiter: Waiter) -> Any:
        if len(self._queue) >= self.max_waiting:
            retry = max(1, math.ceil(self.ledger.last_load_seconds))
            raise ServiceUnavailable(
                f"{len(self._queue)} requests are already waiting for a model (server.max_waiting);"
                f" retry in {retry} s", retry_after=retry)
        self._queue.append(waiter)
        if waiter.kind == "lease":
            self._waiting[waiter.name] += 1
        self._unscanned = True
        self._changed()
        try:
            return await waiter.future
        except asyncio.CancelledError:  # the client left: drop the waiter, or its fresh lease
            fut = waiter.future
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                if isinstance(fut.result(), Lease):
                    self.release(fut.result())
            self._drop(waiter)
            self._changed()
            raise

    def _drop(self, waiter: Waiter) -> None:
        if waiter in self._queue:
            self._queue.remove(waiter)
            if waiter.kind == "lease":
                self._waiting[waiter.name] -= 1
                if self._waiting[waiter.name] <= 0:
                    del self._waiting[waiter.name]

    def _changed(self) -> None:
        self._sync_metrics()
        self._kick.set()

    def _sync_metrics(self) -> None:
        if self.metrics:
            self.metrics.set_queue_depth(len(self._queue))
            for name in self.physical:
                self.metrics.set_waiting(name, self._waiting[name])

    def _finish_one(self, waiter: Waiter, result: Any = None, exc: BaseException | None = None):
        self._drop(waiter)
        if waiter.future.done():
            if isinstance(result, Lease):
                self.release(result)
        elif exc is not None:
            waiter.future.set_exception(exc)
        else:
            waiter.future.set_result(result)

    def _finish(self, name: str, *, slot: Slot | None = None, exc: BaseException | None = None):
        """Every queued request for ``name`` shares the outcome of its one load: a failure,
        or a lease for as many as the model has parallel slots (the rest wait for one)."""
        for waiter in [w for w in self._queue if w.kind == "lease" and w.name == name]:
            if waiter.future.done():
                self._drop(waiter)
            elif slot is None:
                self._finish_one(waiter, exc=exc)
            elif not slot.full:
                self._finish_one(waiter, self._grant(slot))

    # ------------------------------------------------------------------ the admitter

    async def _admit(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            try:
                while await self._step():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # the admitter must not die: every waiter would hang
                log.exception("scheduler: unexpected error; continuing")
                await asyncio.sleep(0.05)
                self._kick.set()
            self._sync_metrics()

    async def _step(self) -> bool:
        """Grant what can be granted; carry out at most one load or unload. True if it did."""
        for w in list(self._queue):
            if w.kind == "lease" and w.name not in self.ledger.fits and not w.future.done():
                try:
                    fit = await self.ledger.fit(w.name)
                except LlmuxError as exc:
                    self._finish(w.name, exc=exc)
                    continue
                if fit.problem:
                    self._finish(w.name, exc=InsufficientVram(fit.problem))
        plan = self._scan()
        if plan is None:
            return False
        waiter, decision = plan
        async with self._lock:
            if decision is None:
                await self.ledger.unload(waiter.name, "admin")
                self._finish_one(waiter, True)
            else:
                await self._swap(waiter, decision)
        return True

    def _scan(self) -> tuple[Waiter, Decision | None] | None:
        """In queue order: admit each request whose model is loaded, not about to be evicted
        and has a free parallel slot (one whose slots are all busy keeps its place and blocks
        nothing); the first one that needs a load or unload is the only one acted on (or, if
        its victims are in use, waited for) — later loads queue behind it."""
        doomed: set[str] = set()
        plan, blocked = None, False
        for waiter in list(self._queue):
            if waiter.future.done():
                self._drop(waiter)
                continue
            slot = self.ledger.loaded.get(waiter.name)
            if waiter.kind == "lease" and slot is not None and waiter.name not in doomed:
                if not slot.full:
                    self._finish_one(waiter, self._grant(slot))
                continue
            if plan is not None or blocked:
                continue
            if waiter.kind == "unload":
                if slot is None:
                    self._finish_one(waiter, False)
                    continue
                doomed.add(waiter.name)
                blocked = slot.in_flight > 0
                plan = None if blocked else (waiter, None)
                continue
            model = self.physical[waiter.name]
            d = decide(self.ledger.view(), model.name, model.type, self.ledger.vram_of(model.name),
                       self.ledger.usable_gb)
            if d.action is Action.NEVER:
                self._finish_one(waiter, exc=InsufficientVram(d.message))
                continue
            doomed.update(d.evict)
            blocked = d.action is Action.WAIT
            plan = None if blocked else (waiter, d)
        self._doomed = doomed
        self._unscanned = False
        return plan

    async def _swap(self, waiter: Waiter, decision: Decision) -> None:
        model = self.physical[waiter.name]
        self._loading = model.name
        try:
            for victim in decision.evict:
                self.ledger.loaded[victim].unloading = True
            before = self.ledger.free_gb()
            released = 0.0
            for victim in decision.evict:
                released += await self.ledger.evict(victim, decision.reasons[victim], model)
            if decision.evict:
                await self.ledger.await_release(before, released)
            try:
                slot = await self.ledger.load(model, waiter.reason)
            except LlmuxError as exc:
                self._finish(model.name, exc=exc)
                return
            self._finish(model.name, slot=slot)
        finally:
            self._loading = None
