"""The GPU memory probe: NVML when present, a clean "no GPU" otherwise, never torch."""

from __future__ import annotations

import sys
import types

from llmux.scheduler.gpu import GIB, FakeGpu, NoGpu, NvmlGpu, probe_gpu


def fake_pynvml(*, init_error: Exception | None = None, count: int = 1) -> types.ModuleType:
    module = types.ModuleType("pynvml")

    def init():
        if init_error:
            raise init_error

    module.nvmlInit = init
    module.nvmlDeviceGetCount = lambda: count
    module.nvmlDeviceGetHandleByIndex = lambda index: f"handle{index}"
    module.nvmlDeviceGetMemoryInfo = lambda handle: types.SimpleNamespace(
        total=16 * GIB, free=12 * GIB, used=4 * GIB)
    return module


def test_without_nvidia_ml_py_there_is_no_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    gpu = probe_gpu()
    assert isinstance(gpu, NoGpu) and not gpu.available and gpu.memory() is None
    assert gpu.reason == "nvidia-ml-py is not installed"


def test_without_a_driver_there_is_no_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_error=OSError("libnvidia-ml.so.1")))
    gpu = probe_gpu()
    assert isinstance(gpu, NoGpu) and "NVML unavailable: libnvidia-ml.so.1" in gpu.reason


def test_without_a_device_there_is_no_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(count=0))
    assert probe_gpu().reason == "no NVIDIA device 0"


def test_nvml_reports_memory(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    gpu = probe_gpu()
    assert isinstance(gpu, NvmlGpu) and gpu.available
    mem = gpu.memory()
    assert (mem.total_gb, mem.free_gb, mem.used_gb) == (16, 12, 4)


def test_the_core_never_imports_torch():
    import subprocess

    code = ("import sys, llmux.scheduler, llmux.metrics; llmux.scheduler.probe_gpu(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fake_gpu_releases_late():
    gpu = FakeGpu(total_gb=16, used_gb=1, lag=2)
    gpu.allocate("a", 4)
    assert gpu.memory().free_gb == 11
    gpu.release("a")
    assert [gpu.memory().free_gb for _ in range(3)] == [11, 11, 15]
