"""Measuring one model's inference on one device: the core of the GPU-versus-CPU benchmark.

``llmux bench`` (standalone) and ``POST /v1/admin/bench`` (inside the server that owns the
GPU) both measure through these plain, synchronous functions, so the two can never disagree:

- chat models: time to first token and decode tokens/s (greedy, a fixed prompt);
- ASR models: seconds to transcribe a fixed synthetic clip, and the real-time factor;
- TTS models: synthesis time over the duration of the audio produced (TST-022).

The CPU half runs at the settings a user would pick for the best CPU speed: every core
(``n_threads``, where the backend takes it and models.yaml does not set it) and the
process's OpenMP settings; each half says what it ran with (``settings``), so the speed-up
reported is the one a user would measure.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time

from . import openmp

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
SPEECH_TEXT = ("The quick brown fox jumps over the lazy dog. Benchmarks measure how long "
               "it takes to say a sentence, against how long the sentence lasts.")
ASR_SECONDS = 10.0
DEVICES = {"cpu": ("cpu",), "cuda": ("cuda",), "both": ("cpu", "cuda")}


def measure(backend, model, handle, *, chat_format=None, runs: int = 3,
            max_tokens: int = 64) -> dict:
    """Run the model's fixed inference ``runs`` times (after one warm-up); medians."""
    if model.type == "llm":
        def one(n: int) -> dict:
            return _chat_once(backend, model, handle, chat_format, n)

        one(min(4, max_tokens))
        got = [one(max_tokens) for _ in range(runs)]
        return {"ttft_ms": _median(g["ttft_ms"] for g in got),
                "decode_tps": _median(g["decode_tps"] for g in got),
                "completion_tokens": _median(g["completion_tokens"] for g in got),
                "runs": got}
    one = (_asr_once if model.type == "asr" else _tts_once)
    one(backend, model, handle)
    got = [one(backend, model, handle) for _ in range(runs)]
    return {"seconds": _median(g["seconds"] for g in got),
            "audio_seconds": got[0]["audio_seconds"],
            "rtf": _median(g["rtf"] for g in got), "runs": got}


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _chat_once(backend, model, handle, chat_format, max_tokens: int) -> dict:
    from .types import (
        Cancellation,
        ChatRequest,
        ContentDelta,
        ReasoningDelta,
        SamplingParams,
        Usage,
    )

    request = ChatRequest(
        model=model.name, messages=[{"role": "user", "content": PROMPT}],
        sampling=SamplingParams(max_tokens=max_tokens, temperature=0.0, seed=0),
        stream=True, chat_format=chat_format)
    first = last = None
    tokens = 0
    t0 = time.perf_counter()
    for event in backend.infer(model, handle, request, Cancellation()):
        kind = type(event)
        if kind is ContentDelta or kind is ReasoningDelta:
            last = time.perf_counter()
            first = first or last
        elif kind is Usage:
            tokens = event.completion_tokens
    span = (last - first) if first is not None else 0.0
    return {"ttft_ms": (first - t0) * 1000 if first is not None else None,
            "decode_tps": (tokens - 1) / span if tokens > 1 and span > 0 else None,
            "completion_tokens": tokens, "seconds": time.perf_counter() - t0}


def _asr_once(backend, model, handle) -> dict:
    import numpy as np

    from .types import Cancellation, TranscriptionRequest

    rate = 16000
    t = np.arange(int(ASR_SECONDS * rate), dtype=np.float32) / rate
    # A voiced-like signal: harmonics with a slow pitch glide and syllable-rate envelope.
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    samples = sum(np.sin(k * phase) / k for k in range(1, 6)) * (
        0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2)
    samples = (0.2 * samples / np.max(np.abs(samples))).astype(np.float32)
    request = TranscriptionRequest(samples=samples, sample_rate=rate, language="en")
    t0 = time.perf_counter()
    backend.infer(model, handle, request, Cancellation())
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "audio_seconds": ASR_SECONDS, "rtf": seconds / ASR_SECONDS}


def _tts_once(backend, model, handle) -> dict:
    from .types import Cancellation, SpeechRequest

    t0 = time.perf_counter()
    speech = backend.infer(model, handle, SpeechRequest(text=SPEECH_TEXT), Cancellation())
    seconds = time.perf_counter() - t0
    audio = len(speech.samples) / speech.sample_rate
    return {"seconds": seconds, "audio_seconds": audio,
            "rtf": seconds / audio if audio else None}


def speedup(cpu: dict | None, gpu: dict | None) -> float | None:
    """GPU over CPU: decode tokens/s for chat, time for audio."""
    if not cpu or not gpu or "skipped" in cpu or "skipped" in gpu or "error" in gpu:
        return None
    if cpu.get("decode_tps") and gpu.get("decode_tps"):
        return gpu["decode_tps"] / cpu["decode_tps"]
    if cpu.get("seconds") and gpu.get("seconds"):
        return cpu["seconds"] / gpu["seconds"]
    return None


def load_and_measure(backend, model, device: str, **kw) -> dict:
    """Load ``model`` on ``device`` apart from the scheduler, measure, unload. The CPU half
    runs on every core (:func:`cpu_model`)."""
    if device == "cpu":
        info = getattr(backend, "info", None)
        model = cpu_model(model, getattr(info, "options_schema", None))
    t0 = time.perf_counter()
    handle = backend.load(model, device)
    load_s = time.perf_counter() - t0
    try:
        result = measure(backend, model, handle, **kw)
    finally:
        t0 = time.perf_counter()
        backend.unload(model, handle)
        del handle
        unload_s = time.perf_counter() - t0
    return {"device": device, "load_s": load_s, "unload_s": unload_s,
            "settings": settings_of(model, device), **result}


def result_of(model, halves: dict[str, dict], gpu_found: str, where: str) -> dict:
    return {"model": model.name, "backend": model.backend, "type": model.type,
            "where": where, "gpu": gpu_found, "devices": halves,
            "speedup": speedup(halves.get("cpu"), halves.get("cuda"))}


def cpu_model(model, options_schema: dict | None):
    """``model`` as the CPU half loads it: every core where the backend takes ``n_threads``
    and the operator did not choose a number."""
    takes = "n_threads" in ((options_schema or {}).get("properties") or {})
    if takes and "n_threads" not in model.options:
        return dataclasses.replace(model, options={**model.options,
                                                   "n_threads": os.cpu_count() or 1})
    return model


def settings_of(model, device: str) -> dict:
    """What a half ran with: its threads and this process's OpenMP settings."""
    threads = model.options.get("n_threads")
    return {"device": device,
            "threads": threads if threads is not None else "the runtime's default",
            "openmp": openmp.settings()}
