"""llmux runtime plugin ``upstream``: virtual models served by an upstream OpenAI-compatible
engine (vLLM, SGLang, llama.cpp's server, another llmux): chat, transcription and speech.

llmux keeps the clients' keys, the virtual model names, the behaviour and the admission;
the upstream renders its own chat template and generates. Each loaded model is one pooled
``httpx.Client``; its handle's ``parallel`` (``max_concurrency``) is how many calls the core
sends it at once. httpx is imported only when a model loads.

Modules: ``options`` (the schema and the key), ``client`` (the handle, one exchange),
``chat`` (body and SSE), ``audio`` (transcriptions and speech), ``errors`` (the mapping).
"""

from __future__ import annotations

from typing import Any

from llmux import (
    BackendInfo,
    Cancellation,
    ChatRequest,
    InvalidRequest,
    PhysicalModel,
    SpeechRequest,
    TranscriptionRequest,
    VramEstimate,
    hookimpl,
)

from .options import MAX_CONCURRENCY, OPTIONS_SCHEMA, settings

__all__ = ["backends", "estimate_vram", "infer", "load", "measure_vram", "unload"]


@hookimpl
def backends() -> list[BackendInfo]:
    return [
        BackendInfo(
            "upstream",
            types=frozenset({"llm", "asr", "tts"}),
            options_schema=OPTIONS_SCHEMA,
            description="an upstream OpenAI-compatible server (vLLM, another llmux)",
            parallel=MAX_CONCURRENCY,  # the most; each handle's own ``parallel`` lowers it
        )
    ]


@hookimpl
def estimate_vram(model: PhysicalModel, context: int | None) -> VramEstimate:
    return VramEstimate(0.0, note=f"upstream at {settings(model).shown_url}")


@hookimpl
def measure_vram(model: PhysicalModel, handle: Any) -> float | None:
    return 0.0


@hookimpl
def load(model: PhysicalModel, device: str | None) -> Any:
    from .client import Upstream

    return Upstream.open(model.name, settings(model))


@hookimpl
def unload(model: PhysicalModel, handle: Any) -> None:
    handle.close()


@hookimpl
def infer(model: PhysicalModel, handle: Any, request: Any, cancel: Cancellation):
    expected = {"llm": ChatRequest, "asr": TranscriptionRequest, "tts": SpeechRequest}[model.type]
    if not isinstance(request, expected):
        raise InvalidRequest(f"model {model.name!r} is an upstream {model.type} model; it does "
                             f"not take a {type(request).__name__}")
    if isinstance(request, ChatRequest):
        from .chat import chat

        return chat(handle, request, cancel)
    from . import audio

    if isinstance(request, TranscriptionRequest):
        return audio.transcribe(handle, request, cancel)
    return audio.speak(handle, request, cancel)
