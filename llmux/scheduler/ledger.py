"""The VRAM ledger: what is loaded, what each model costs, and the loads and unloads themselves.

Only the manager's admitter calls :meth:`Ledger.load` and :meth:`Ledger.unload`, one at a
time. Model work never runs on the event loop: sizing in the ledger's own thread, and each
model's load, calls and unload in threads of that model's own (:func:`model_threads`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Mapping

from dataclasses import replace

from ..errors import LlmuxError, ModelLoadError
from ..sizing import Fit, fit_model
from ..types import PhysicalModel
from .gpu import Gpu
from .lease import Slot, is_oom
from .policy import PRIORITY, LoadedModel, evictable_after_oom

log = logging.getLogger("llmux.scheduler")


class Ledger:
    def __init__(self, runtimes, physical: Mapping[str, PhysicalModel], gpu: Gpu, *,
                 budget_gb: float | None, reserve_gb: float, metrics=None,
                 release_timeout_s: float = 10.0) -> None:
        self.runtimes = runtimes
        self.physical = physical
        self.gpu = gpu
        self.reserve_gb = reserve_gb
        self.budget_gb, self.source = self._resolve_budget(budget_gb)
        self.metrics = metrics
        self.release_timeout_s = release_timeout_s
        self.loaded: dict[str, Slot] = {}
        self.fits: dict[str, Fit] = {}  # size and fitted context, once per model
        self.measured: dict[str, float] = {}  # by the plugin's own count; kept after unload
        self.events: deque[dict] = deque(maxlen=100_000)  # what happened, for tests
        self.last_load_seconds = 1.0
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="llmux-scheduler")  # sizing

    @property
    def usable_gb(self) -> float:
        return self.budget_gb - self.reserve_gb

    @property
    def used_gb(self) -> float:
        return sum(s.vram_gb for s in self.loaded.values())

    def vram_of(self, name: str) -> float:
        """The model's size (sizing.Fit: estimate at its fitted context, or vram_gb), or what
        the plugin measured once loaded, whichever is larger."""
        fit = self.fits.get(name)
        size = fit.gb if fit is not None else (self.physical[name].vram_gb or 0.0)
        return max(size, self.measured.get(name, 0.0))

    def view(self) -> list[LoadedModel]:
        return [LoadedModel(n, s.model.type, s.vram_gb, s.in_flight)
                for n, s in self.loaded.items()]

    def in_priority_order(self) -> list[str]:
        return sorted(self.loaded, key=lambda n: PRIORITY[self.loaded[n].model.type])

    def snapshot(self) -> dict:
        loaded = [{
            "model": s.model.name, "type": s.model.type, "backend": s.model.backend,
            "vram_gb": s.vram_gb, "vram_estimated_gb": s.estimated_gb,
            "vram_measured_gb": s.measured_gb, "in_flight": s.in_flight,
            "parallel": s.parallel,
            "loaded_since": datetime.fromtimestamp(s.loaded_since, timezone.utc).isoformat(),
        } for s in self.loaded.values()]
        budget = None if math.isinf(self.budget_gb) else self.budget_gb
        vram = {"budget_gb": budget, "reserve_gb": self.reserve_gb, "used_gb": self.used_gb,
                "source": self.source}
        return {"loaded": loaded, "vram": vram}

    async def in_thread(self, fn, *args, executor=None):
        return await asyncio.get_running_loop().run_in_executor(executor or self.pool, fn, *args)

    async def fit(self, name: str) -> Fit:
        """Size ``name`` once (cached): the estimate at the largest context that fits the
        usable budget. The model the plugin loads carries that context."""
        if name in self.fits:
            return self.fits[name]
        model = self.physical[name]
        backend = self.runtimes.get(model.backend)
        usable = None if math.isinf(self.usable_gb) else self.usable_gb
        result = await self.in_thread(fit_model, backend, model, usable)
        self.fits[name] = result
        if result.context is not None and result.context != model.context:
            self.physical[name] = replace(model, context=result.context)
        if result.error:
            log.warning("%s: no VRAM estimate (%s); counting %.2f GiB", name, result.error,
                        result.gb)
        else:
            log.info("%s: %s", name, result.describe())
        return result

    async def fit_all(self) -> None:
        for name in self.physical:
            if self.runtimes.has(self.physical[name].backend):
                try:
                    await self.fit(name)
                except Exception:  # one plugin's bug must not stop the others
                    log.exception("sizing %s failed", name)

    def free_gb(self) -> float | None:
        mem = self.gpu.memory() if self.gpu.available else None
        return None if mem is None else mem.free_gb

    # ------------------------------------------------------------------ model work

    async def evict(self, victim: str, reason: str, model: PhysicalModel) -> float:
        slot = self.loaded[victim]
        log.info("evicting %s (%s, %.1f GB) to load %s (%s, %.1f GB): %s", victim, slot.model.type,
                 slot.vram_gb, model.name, model.type, self.vram_of(model.name),
                 {"replace": "one model of this type at a time", "room": "not enough VRAM",
                  "oom": "out of memory during the load"}.get(reason, reason))
        self.events.append({"event": "evict", "model": victim, "reason": reason, "for": model.name,
                            "in_flight": slot.in_flight, "loaded": self.view()})
        if self.metrics:
            self.metrics.model_evicted(victim, reason)
        return await self.unload(victim, "evict")

    async def unload(self, name: str, reason: str) -> float:
        """Unload ``name`` (never while leased); return the measured GB it should free."""
        slot = self.loaded[name]
        if slot.in_flight:
            raise RuntimeError(f"scheduler bug: unloading {name} with {slot.in_flight} leases")
        slot.unloading = True
        started = time.monotonic()
        try:
            await self.in_thread(slot.backend.unload, slot.model, slot.handle,
                                 executor=slot.executor)
        except Exception:
            log.exception("unloading %s raised; dropping it anyway", name)
        finally:
            if slot.executor is not None:
                slot.executor.shutdown(wait=False)  # its thread ends, its OpenMP team too
        del self.loaded[name]
        slot.handle = None
        seconds = time.monotonic() - started
        log.info("unloaded %s (%s) in %.2f s", name, reason, seconds)
        self.events.append({"event": "unload", "model": name, "reason": reason})
        if self.metrics:
            self.metrics.model_unloaded(name, seconds, reason)
            self.metrics.set_vram_used(self.used_gb)
        return slot.measured_gb or 0.0

    async def await_release(self, before: float | None, released: float) -> None:
        """On CUDA, wait until the unloads' memory is free again before the next load."""
        if before is None or released <= 0:
            return
        want = before + released - 0.25
        started = time.monotonic()
        while (free := self.free_gb()) is not None and free < want:
            if time.monotonic() - started > self.release_timeout_s:
                log.warning("GPU memory not released after %.1f s: %.2f GB free, expected %.2f GB;"
                            " loading anyway", self.release_timeout_s, free, want)
                return
            await asyncio.sleep(0.05)
        log.info("GPU memory released in %.2f s", time.monotonic() - started)

    async def load(self, model: PhysicalModel, reason: str) -> Slot:
        """Load ``model``; an out-of-memory evicts what the priority rule allows, then retries
        once. A failure leaves the ledger as it was (but for the OOM evictions)."""
        backend = self.runtimes.get(model.backend)
        threads = model_threads(model, backend)
        try:
            return await self._load(model, backend, threads, reason)
        except BaseException:
            threads.shutdown(wait=False)
            raise

    async def _load(self, model: PhysicalModel, backend, threads: Executor, reason: str) -> Slot:
        for attempt in (1, 2):
            started = time.monotonic()
            try:
                handle = await self.in_thread(backend.load, model, None, executor=threads)
            except Exception as exc:
                victims = evictable_after_oom(self.view(), model.type) if attempt == 1 else ()
                if is_oom(exc) and victims:
                    log.warning("out of memory loading %s; evicting %s and retrying once",
                                model.name, ", ".join(victims))
                    for victim in victims:
                        self.loaded[victim].unloading = True
                    for victim in victims:
                        await self.evict(victim, "oom", model)
                    continue
                log.error("loading %s failed after %.2f s: %s", model.name,
                          time.monotonic() - started, exc)
                self.events.append({"event": "load_failed", "model": model.name})
                if self.metrics:
                    self.metrics.model_load_failed(model.name)
                raise load_error(model, exc, "loading it") from exc
            seconds = time.monotonic() - started
            measured = await self.in_thread(self._measure, model, backend, handle,
                                            executor=threads)
            return self._loaded(model, backend, handle, seconds, reason, measured, threads)
        raise AssertionError("unreachable")

    @staticmethod
    def _measure(model, backend, handle) -> float | None:
        """The plugin's own count, never whole-device free memory (CUDA context, others);
        in the worker thread, as every hook."""
        try:
            return backend.measure_vram(model, handle)
        except Exception:
            log.exception("measuring %s raised; using its estimate", model.name)
            return None

    def _loaded(self, model, backend, handle, seconds, reason, measured, threads) -> Slot:
        self.last_load_seconds = seconds
        if measured is not None:
            self.measured[model.name] = round(measured, 3)
        fit = self.fits.get(model.name)
        slot = Slot(model, backend, handle, self.vram_of(model.name),
                    fit.gb if fit else None, self.measured.get(model.name), time.time(),
                    executor=threads)
        self.loaded[model.name] = slot
        log.info("loaded %s (%s, %.1f GB) in %.2f s", model.name, model.type, slot.vram_gb, seconds)
        self.events.append({"event": "load", "model": model.name})
        if self.used_gb > self.usable_gb:
            log.warning("VRAM ledger %.1f GB exceeds the usable %.1f GB after measuring %s",
                        self.used_gb, self.usable_gb, model.name)
        if self.metrics:
            self.metrics.model_loaded(model.name, seconds, reason)
            self.metrics.set_vram_used(self.used_gb)
        return slot

    def _resolve_budget(self, budget_gb: float | None) -> tuple[float, str]:
        """The configured budget; on CUDA, no more than the device's free memory at start."""
        mem = self.gpu.memory() if self.gpu.available else None
        if mem is None:
            return (math.inf if budget_gb is None else float(budget_gb)), "config"
        if budget_gb is None or mem.free_gb < budget_gb:
            return mem.free_gb, "cuda"
        return float(budget_gb), "config"


def model_threads(model: PhysicalModel, backend) -> ThreadPoolExecutor:
    """The threads a model's load, calls and unload run in, as many as its backend's
    parallel slots (started as needed; a one-slot model has exactly one, for its lifetime).

    The CPU kernels of llama.cpp and torch use OpenMP, and libgomp gives every thread that
    starts a parallel region a team of helper threads of its own. While the process holds
    more such threads than it has CPUs, libgomp nearly stops spinning between regions
    (100 spins, then a futex sleep) in every team. A shared pool hands a model's calls to
    whichever of its threads is idle, so teams multiply. Measured on a 156 M-parameter GGUF
    with 2 threads on 2 cores: with a second team alive, decode fell from 79.9 to 67.0
    tokens/s and a 49-token prompt took 12 ms longer (76k voluntary context switches in 8
    requests, against none). The model's thread ends with its unload, and its team with it.
    """
    most = max(1, int(getattr(backend.info, "parallel", 1) or 1))
    return ThreadPoolExecutor(most, thread_name_prefix=f"llmux-{model.name}")


def load_error(model: PhysicalModel, exc: BaseException, doing: str) -> LlmuxError:
    if isinstance(exc, LlmuxError):
        return exc
    return ModelLoadError(f"model {model.name!r} could not be loaded: {doing} raised "
                          f"{type(exc).__name__}: {exc}")
