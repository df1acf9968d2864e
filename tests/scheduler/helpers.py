"""Test helpers: models of the production sizes (the RTX 5070 Ti budget), HTTP calls."""

from __future__ import annotations

from pathlib import Path

from llmux.testing import sine_wav
from llmux.types import PhysicalModel

# The true sizes (GiB) of the production models at their (fitted) contexts, as
# `llmux check-config config` prints them for the production shapes (tests/production checks
# the same scenarios with the sizes computed there); the seed's nominal figures were
# 4 / 9 / 13 / 4 / 2 / 2.
SIZES = {
    "qwen3.5-4b": ("llm", 6.82),  # FP8 on load, 32k context
    "qwen3.5-9b-fp8": ("llm", 13.11),
    "gpt-oss-20b": ("llm", 14.13),
    "cohere-transcribe": ("asr", 4.33),
    "chatterbox": ("tts", 2.68),  # T3 in bfloat16
    "chatterbox-turbo": ("tts", 2.58),
}
BUDGET = {"budget_gb": 15.6, "reserve_gb": 0.5}
# Round figures on a 16 GB budget for the manager's mechanics (leases, queues, failures).
NOMINAL = {"qwen3.5-4b": ("llm", 4.0), "qwen3.5-9b-fp8": ("llm", 9.0),
           "gpt-oss-20b": ("llm", 13.0), "cohere-transcribe": ("asr", 4.0),
           "chatterbox": ("tts", 2.0), "chatterbox-turbo": ("tts", 2.0)}


def echo_model(name: str, type: str, vram_gb: float, **options) -> PhysicalModel:
    return PhysicalModel(name=name, type=type, backend="echo", path=name,
                         models_dir=Path("/nonexistent"), vram_gb=vram_gb, options=options)


def production_models(**options) -> dict[str, PhysicalModel]:
    return {n: echo_model(n, t, v, **options) for n, (t, v) in NOMINAL.items()}


def flaky_model(name: str, type: str, vram_gb: float) -> PhysicalModel:
    return PhysicalModel(name=name, type=type, backend="flaky", path=name,
                         models_dir=Path("/nonexistent"), vram_gb=vram_gb)


USER = {"Authorization": "Bearer sk-sched-user-000000000000000000"}
ADMIN = {"Authorization": "Bearer sk-sched-admin-00000000000000000"}
FORMATS = {"qwen3.5-4b": "qwen3_5", "qwen3.5-9b-fp8": "qwen3_5", "gpt-oss-20b": "gpt_oss"}
VIRTUAL = {
    "qwen3.5-4b-thinking": ("qwen3.5-4b", {"thinking": True}),
    "qwen3.5-4b-instruct": ("qwen3.5-4b", {"thinking": False}),
    "qwen3.5-9b-fp8-thinking": ("qwen3.5-9b-fp8", {"thinking": True}),
    "qwen3.5-9b-fp8-instruct": ("qwen3.5-9b-fp8", {"thinking": False}),
    "gpt-oss-20b-low": ("gpt-oss-20b", {"reasoning_effort": "low"}),
    "gpt-oss-20b-high": ("gpt-oss-20b", {"reasoning_effort": "high"}),
    "cohere-transcribe": ("cohere-transcribe", {"language": "en"}),
    "Chatterbox": ("chatterbox", {"voice": "default"}),
    "Chatterbox-Turbo": ("chatterbox-turbo", {"voice": "default"}),
}


def models_yaml(llm_options: dict | None = None, **server) -> dict:
    physical = {}
    for name, (mtype, vram) in SIZES.items():
        entry = {"type": mtype, "backend": "echo", "path": name, "vram_gb": vram}
        if mtype == "llm":
            entry["chat_format"] = FORMATS[name]
            entry["options"] = dict(llm_options or {})
        physical[name] = entry
    virtual = {v: {"physical": p, "behaviour": b} for v, (p, b) in VIRTUAL.items()}
    return {"models_dir": ".", "vram": dict(BUDGET),
            "server": {"max_waiting": 256, **server}, "physical": physical, "virtual": virtual}


def wav_bytes(seconds: float = 0.5, rate: int = 16000) -> bytes:
    return sine_wav(seconds, rate)


async def chat(client, model: str, text: str = "hello there") -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    async with client.post("/v1/chat/completions", json=body, headers=USER) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def speak(client, model: str) -> None:
    body = {"model": model, "input": "hello", "response_format": "wav"}
    async with client.post("/v1/audio/speech", json=body, headers=USER) as resp:
        assert resp.status == 200, await resp.text()
        await resp.read()


async def transcribe(client) -> None:
    import aiohttp

    form = aiohttp.FormData()
    form.add_field("model", "cohere-transcribe")
    form.add_field("file", wav_bytes(), filename="a.wav", content_type="audio/wav")
    async with client.post("/v1/audio/transcriptions", data=form, headers=USER) as resp:
        assert resp.status == 200, await resp.text()


async def resident(client) -> list[str]:
    async with client.get("/health") as resp:
        assert resp.status == 200
        return sorted(m["model"] for m in (await resp.json())["loaded"])


async def open_stream(client, model: str):
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "go on"}]}
    resp = await client.post("/v1/chat/completions", json=body, headers=USER)
    assert resp.status == 200
    await resp.content.readline()
    return resp


async def health(client) -> dict:
    async with client.get("/health") as resp:
        return await resp.json()
