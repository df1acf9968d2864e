"""llmux runtime plugin ``llamacpp``: GGUF chat models through llama-cpp-python.

Chat (streaming or not) with the model's own embedded chat template, reasoning and tool
calls through the core's chat formats, images through the mmproj vision projector, and a
VRAM estimate read from the GGUF files. llama_cpp is imported only when a model loads, so
discovering this plugin costs nothing.
"""

from __future__ import annotations

import gc
from typing import Any

from llmux import BackendInfo, Cancellation, ChatRequest, InvalidRequest, PhysicalModel, hookimpl

from .options import OPTIONS_SCHEMA, settings

__all__ = ["backends", "estimate_vram", "load", "unload", "infer"]


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
def estimate_vram(model: PhysicalModel) -> float | None:
    from .vram import estimate_gb

    return estimate_gb(settings(model))


@hookimpl
def load(model: PhysicalModel, device: str | None) -> Any:
    from .engine import Engine

    return Engine(model.name, settings(model, device))


@hookimpl
def unload(model: PhysicalModel, handle: Any) -> None:
    handle.close()
    del handle
    gc.collect()


@hookimpl
def infer(model: PhysicalModel, handle: Any, request: Any, cancel: Cancellation):
    if not isinstance(request, ChatRequest):
        raise InvalidRequest(
            f"model {model.name!r} (llamacpp) serves chat only, not {type(request).__name__}"
        )
    return handle.chat(request, cancel)
