"""A ``flaky`` test backend that checks the scheduler's invariants from the runtime's side.

It keeps its own record of what is resident and of which leases the test holds, so the
checks do not trust the manager's bookkeeping. Violations are collected, not raised, so a
broken invariant shows up as a clear test failure rather than a load error.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from llmux import hookimpl
from llmux.types import BackendInfo, PhysicalModel


@dataclass
class FlakyState:
    usable_gb: float = 15.5
    resident: dict[str, PhysicalModel] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)  # leases the test holds, by model
    fail_next: dict[str, int] = field(default_factory=dict)  # name -> loads to fail
    oom_next: dict[str, int] = field(default_factory=dict)  # name -> loads to fail with OOM
    loads: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    gpu: object = None  # a FakeGpu to allocate on, if any
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self, usable_gb: float = 15.5, gpu=None) -> None:
        self.__init__(usable_gb=usable_gb, gpu=gpu)


STATE = FlakyState()


class FlakyPlugin:
    @hookimpl
    def backends(self):
        return [BackendInfo(name="flaky", types=frozenset({"llm", "asr", "tts"}))]

    @hookimpl
    def estimate_vram(self, model):
        return model.vram_gb

    @hookimpl
    def measure_vram(self, model, handle):
        """The fake device's own count of this model's allocation (as torch's would be)."""
        gpu = STATE.gpu
        return None if gpu is None else gpu.allocations.get(model.name)

    @hookimpl
    def load(self, model, device):
        s = STATE
        with s.lock:
            for table, message in ((s.fail_next, "simulated failure"),
                                   (s.oom_next, "CUDA out of memory. Tried to allocate 2 GiB")):
                if table.get(model.name, 0) > 0:
                    table[model.name] -= 1
                    raise RuntimeError(message)
            if model.name in s.resident:
                s.violations.append(f"duplicate load of {model.name}")
            after = [*s.resident.values(), model]
            for t in ("llm", "tts"):
                if sum(m.type == t for m in after) > 1:
                    s.violations.append(f"two {t} models resident: {[m.name for m in after]}")
            total = sum(m.vram_gb for m in after)
            if total > s.usable_gb + 1e-6:
                names = [m.name for m in after]
                s.violations.append(f"{total} GB resident > {s.usable_gb}: {names}")
            s.resident[model.name] = model
            s.loads[model.name] = s.loads.get(model.name, 0) + 1
            if s.gpu is not None:
                s.gpu.allocate(model.name, model.vram_gb)
        return {"model": model.name}

    @hookimpl
    def unload(self, model, handle):
        s = STATE
        with s.lock:
            if s.held.get(model.name, 0):
                s.violations.append(f"{model.name} unloaded with {s.held[model.name]} leases held")
            if s.resident.pop(model.name, None) is None:
                s.violations.append(f"unload of {model.name}, which is not resident")
            if s.gpu is not None:
                s.gpu.release(model.name)

    @hookimpl
    def infer(self, model, handle, request, cancel):
        return None
