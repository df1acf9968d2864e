"""Which device a model loads on, and giving its memory back. torch is imported only inside
the functions (and :func:`free_device_memory` never imports it)."""

from __future__ import annotations

import gc
import sys

from ..errors import ModelLoadError


def choose_device(forced: str | None = None, configured: str | None = None) -> str:
    """The torch device: ``forced`` (the ``load`` hook's ``device``), else ``configured``
    (the model's ``options.device``), else ``auto``: the GPU when torch sees one, else the
    CPU. ``cpu``, ``cuda`` and ``cuda:N`` are accepted; a CUDA device torch cannot see, or
    any other name, is a :class:`ModelLoadError`."""
    import torch

    want = forced or configured or "auto"
    if want == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {want!r} was asked for, but torch sees no CUDA device "
                             f"(torch {torch.__version__})")
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
