"""llmux runtime plugin ``llamacpp``: GGUF chat models through llama-cpp-python.

Chat (streaming or not) with the model's own embedded chat template, reasoning and tool
calls through the core's chat formats, images through the mmproj vision projector, and a
VRAM estimate read from the GGUF files. llama_cpp is imported only when a model loads, so
discovering this plugin costs nothing.
"""

from __future__ import annotations

import gc
from typing import Any

from llmux import (
    BackendInfo,
    Cancellation,
    PhysicalModel,
    VramEstimate,
    hookimpl,
)
from llmux.kit import chat_only

from .options import OPTIONS_SCHEMA, settings

__all__ = ["backends", "estimate_vram", "load", "unload", "infer", "prompt_cache"]


@hookimpl
def backends() -> list[BackendInfo]:
    return [
        BackendInfo(
            "llamacpp",
            types=frozenset({"llm"}),
            options_schema=OPTIONS_SCHEMA,
            description="GGUF models via llama-cpp-python (chat, tools, thinking, vision)",
        )
    ]


@hookimpl
def estimate_vram(model: PhysicalModel, context: int | None) -> VramEstimate:
    from dataclasses import replace

    from .vram import estimate_gb

    s = settings(model)
    if context:
        s = replace(s, n_ctx=context)
    return VramEstimate(estimate_gb(s), s.n_ctx, note=f"n_gpu_layers {s.n_gpu_layers}")


@hookimpl
def measure_vram(model: PhysicalModel, handle: Any) -> float | None:
    """llama.cpp's own sizes: the model's tensors (share offloaded) and the context state."""
    return handle.device_bytes() / 1024**3 if handle.settings.n_gpu_layers else None


@hookimpl
def prompt_cache(model: PhysicalModel) -> dict | None:
    """The model's saved prompt states (``checkpoints``), kept across unloads."""
    from .checkpoints import report

    return report(model.name)


@hookimpl
def load(model: PhysicalModel, device: str | None) -> Any:
    from .engine import Engine

    return Engine(model.name, settings(model, device))


@hookimpl
def unload(model: PhysicalModel, handle: Any) -> None:
    with handle.lock:  # never free the model under a running call (shutdown included)
        handle.close()
    del handle
    gc.collect()


@hookimpl
def infer(model: PhysicalModel, handle: Any, request: Any, cancel: Cancellation):
    return handle.chat(chat_only(model, request, "llamacpp"), cancel)
