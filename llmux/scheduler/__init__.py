"""Which models are in VRAM, and who may use them.

- :mod:`.policy`: the pure eviction policy (no clock, no GPU, no I/O);
- :mod:`.manager`: :class:`ModelManager`, the async side: leases, the admission queue;
- :mod:`.ledger`: the VRAM ledger and the loads and unloads themselves;
- :mod:`.gpu`: the GPU memory probe (NVML, or none) and a fake for tests.
"""

from .gpu import FakeGpu, GpuMemory, NoGpu, probe_gpu
from .lease import Lease
from .manager import ModelManager
from .policy import Action, Decision, LoadedModel, decide

__all__ = [
    "Action", "Decision", "FakeGpu", "GpuMemory", "Lease", "LoadedModel", "ModelManager",
    "NoGpu", "decide", "probe_gpu",
]
