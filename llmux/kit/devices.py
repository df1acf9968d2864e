"""Which device a model loads on, and giving its memory back. The core never imports torch:
the runtime says whether it sees a GPU, and :func:`free_device_memory` only touches a torch
the runtime has already loaded."""

from __future__ import annotations

import gc
import sys

from ..errors import ModelLoadError


def choose_device(forced: str | None = None, configured: str | None = None, *,
                  gpu: bool, seen_by: str = "the runtime") -> str:
    """The device: ``forced`` (the ``load`` hook's ``device``), else ``configured`` (the
    model's ``options.device``), else ``auto``: the GPU when the runtime sees one (``gpu``,
    e.g. ``torch.cuda.is_available()``), else the CPU. ``cpu``, ``cuda`` and ``cuda:N`` are
    accepted; a CUDA device the runtime cannot see, or any other name, is a
    :class:`ModelLoadError` (``seen_by`` names the runtime in it, e.g. ``"torch 2.11"``)."""
    want = forced or configured or "auto"
    if want == "auto":
        return "cuda" if gpu else "cpu"
    if want.startswith("cuda") and not gpu:
        raise ModelLoadError(f"device {want!r} was asked for, but {seen_by} sees no CUDA "
                             "device")
    if want != "cpu" and not want.startswith("cuda"):
        raise ModelLoadError(f"unknown device {want!r}: use 'cpu', 'cuda' or 'cuda:N'")
    return want


def free_device_memory(device: str | None = None) -> None:
    """Collect garbage, then hand torch's cached GPU memory back (for ``device`` a CUDA one,
    or any when None). Call it after dropping a model's references (``unload``, a failed
    ``load``). Nothing is imported: without torch loaded there is no cache to empty."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is None or (device is not None and not device.startswith("cuda")):
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
