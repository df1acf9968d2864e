"""The small records the manager keeps: a loaded model's slot, a waiter, a lease."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..runtime import Backend
from ..types import PhysicalModel

if TYPE_CHECKING:
    from .manager import ModelManager


@dataclass(eq=False)
class Slot:
    """A loaded physical model."""

    model: PhysicalModel
    backend: Backend
    handle: Any
    vram_gb: float  # what the ledger counts: max(configured, estimated, measured)
    estimated_gb: float | None
    measured_gb: float | None
    loaded_since: float  # time.time()
    in_flight: int = 0  # leases held: calls running on the model, at most ``parallel``
    unloading: bool = False
    #: The model's own threads (:func:`llmux.scheduler.ledger.model_threads`): its load,
    #: calls and unload run there (None, for slots built by hand: the loop's default one).
    executor: Executor | None = None

    @property
    def parallel(self) -> int:
        """How many calls the model serves at once: its backend's ``BackendInfo.parallel``
        (the most; the thread pool is sized from it), or fewer where the handle has an int
        ``parallel`` of its own (a per-model figure, e.g. an upstream's ``max_concurrency``)."""
        most = max(1, int(getattr(self.backend.info, "parallel", 1) or 1))
        own = getattr(self.handle, "parallel", None)
        if isinstance(own, int) and not isinstance(own, bool):
            return max(1, min(own, most))
        return most

    @property
    def full(self) -> bool:
        return self.in_flight >= self.parallel


@dataclass(eq=False)
class Waiter:
    """A request queued for admission (``lease``) or an admin unload (``unload``).

    A lease waiter waits for its model to load, or, when it is loaded, for one of its
    parallel slots to come free; either way it counts toward ``max_waiting``."""

    name: str
    kind: str
    future: asyncio.Future
    reason: str = "request"


class Lease:
    """A read lease on a loaded model: it will not be evicted while this is held."""

    __slots__ = ("manager", "slot", "released")

    def __init__(self, manager: "ModelManager", slot: Slot) -> None:
        self.manager = manager
        self.slot = slot
        self.released = False

    @property
    def model(self) -> PhysicalModel:
        return self.slot.model

    @property
    def backend(self) -> Backend:
        return self.slot.backend

    @property
    def handle(self) -> Any:
        return self.slot.handle

    @property
    def executor(self) -> Executor | None:
        """Where calls on this model run (its own threads)."""
        return self.slot.executor

    def release(self) -> None:
        self.manager.release(self)

    def __repr__(self) -> str:
        state = "released" if self.released else "held"
        return f"<Lease {self.slot.model.name} {state}>"


class LeaseContext:
    """What ``ModelManager.lease(name)`` returns: ``async with`` acquires and releases."""

    __slots__ = ("manager", "name", "lease")

    def __init__(self, manager: "ModelManager", name: str) -> None:
        self.manager = manager
        self.name = name
        self.lease: Lease | None = None

    async def __aenter__(self) -> Lease:
        self.lease = await self.manager.acquire(self.name)
        return self.lease

    async def __aexit__(self, *exc_info) -> None:
        if self.lease is not None:
            self.manager.release(self.lease)


def is_oom(exc: BaseException) -> bool:
    """An out-of-memory error of any runtime (torch, llama.cpp, ...), told by name or text."""
    text = f"{type(exc).__name__} {exc}".lower().replace("_", " ")
    return "out of memory" in text or "outofmemory" in text.replace(" ", "")
