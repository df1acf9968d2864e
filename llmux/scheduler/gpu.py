"""How much GPU memory there is and how much is free.

:func:`probe_gpu` returns an NVML probe when the ``nvidia-ml-py`` package (module ``pynvml``)
and an NVIDIA driver are present, and :class:`NoGpu` otherwise; it never raises and never
imports torch. :class:`FakeGpu` stands in for a device in tests, behind the same interface.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

GIB = 1024**3


@dataclass(frozen=True)
class GpuMemory:
    total_gb: float
    free_gb: float

    @property
    def used_gb(self) -> float:
        return self.total_gb - self.free_gb


class Gpu(Protocol):
    name: str  # "cuda" for a real or fake device, "none" without one

    @property
    def available(self) -> bool: ...

    def memory(self) -> GpuMemory | None:
        """Total and free memory now, or ``None`` when there is no device."""


class NoGpu:
    name = "none"
    available = False

    def __init__(self, reason: str = "no GPU") -> None:
        self.reason = reason

    def memory(self) -> GpuMemory | None:
        return None

    def __repr__(self) -> str:
        return f"NoGpu({self.reason!r})"


class NvmlGpu:
    """One NVIDIA device read through NVML. Build it with :func:`probe_gpu`."""

    name = "cuda"
    available = True

    def __init__(self, pynvml, index: int = 0) -> None:
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        self.index = index

    def memory(self) -> GpuMemory | None:
        try:
            info = self._nvml.nvmlDeviceGetMemoryInfo(self._handle)
        except Exception as exc:  # a driver error must not take the scheduler down
            log.warning("NVML: cannot read memory of GPU %d: %s", self.index, exc)
            return None
        return GpuMemory(total_gb=info.total / GIB, free_gb=info.free / GIB)

    def __repr__(self) -> str:
        return f"NvmlGpu(index={self.index})"


def probe_gpu(index: int = 0) -> Gpu:
    """NVML when it works; otherwise :class:`NoGpu` saying why."""
    try:
        import pynvml  # provided by the nvidia-ml-py distribution
    except ImportError:
        return NoGpu("nvidia-ml-py is not installed")
    try:
        pynvml.nvmlInit()
        if pynvml.nvmlDeviceGetCount() <= index:
            return NoGpu(f"no NVIDIA device {index}")
        gpu = NvmlGpu(pynvml, index)
        if gpu.memory() is None:
            return NoGpu("NVML cannot read device memory")
        return gpu
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return NoGpu(f"NVML unavailable: {exc}")


class FakeGpu:
    """A device for tests: ``allocate``/``release`` move memory, ``lag`` delays a release.

    ``release(name)`` makes the memory free only after ``lag`` further ``memory()`` reads,
    like a CUDA caching allocator that gives memory back late.
    """

    name = "cuda"
    available = True

    def __init__(self, total_gb: float = 16.0, used_gb: float = 0.0, lag: int = 0) -> None:
        self.total_gb = total_gb
        self.other_gb = used_gb  # memory used by someone else
        self.lag = lag
        self.allocations: dict[str, float] = {}
        self._releasing: dict[str, list] = {}
        self._lock = threading.Lock()
        self.reads = 0

    def allocate(self, name: str, gb: float) -> None:
        with self._lock:
            self.allocations[name] = self.allocations.get(name, 0.0) + gb

    def release(self, name: str) -> None:
        with self._lock:
            gb = self.allocations.pop(name, 0.0)
            if self.lag:
                self._releasing[name] = [gb, self.lag]

    def memory(self) -> GpuMemory | None:
        with self._lock:
            self.reads += 1
            for name in list(self._releasing):
                entry = self._releasing[name]
                entry[1] -= 1
                if entry[1] < 0:
                    del self._releasing[name]
            pending = sum(gb for gb, _ in self._releasing.values())
            used = self.other_gb + sum(self.allocations.values()) + pending
            return GpuMemory(self.total_gb, max(0.0, self.total_gb - used))
