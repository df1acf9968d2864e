"""TST-016…019, the 200 concurrent requests and virtual switches, through HTTP.

Echo models of the production sizes on a 16 GB budget; ``/health`` is the observable.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from llmux.appstate import MANAGER
from llmux.builtin import echo

from .helpers import chat, resident, speak, transcribe


async def test_tst016_to_019_through_http(client):
    await speak(client, "Chatterbox")
    await transcribe(client)
    await chat(client, "qwen3.5-4b-instruct")
    assert await resident(client) == ["chatterbox", "cohere-transcribe", "qwen3.5-4b"]  # 016
    await chat(client, "qwen3.5-9b-fp8-instruct")
    # 017 cannot hold on 15.1 GiB (13.11 + 4.33 + 2.68); next best: the 9B alone, since
    # neither ASR nor TTS fits beside it. 019: the 4B was replaced.
    assert await resident(client) == ["qwen3.5-9b-fp8"]
    async with client.get("/health") as resp:
        assert (await resp.json())["vram"]["used_gb"] == 13.11
    await chat(client, "gpt-oss-20b-low")
    assert await resident(client) == ["gpt-oss-20b"]  # 018: ASR and TTS evicted
    await transcribe(client)
    assert await resident(client) == ["cohere-transcribe"]  # 018: ASR evicts the LLM
    await speak(client, "Chatterbox-Turbo")
    await chat(client, "qwen3.5-4b-thinking")
    await chat(client, "gpt-oss-20b-high")
    assert await resident(client) == ["gpt-oss-20b"]
    assert echo.RECORDS["qwen3.5-4b"].unloads == 2 and echo.RECORDS["chatterbox"].unloads == 1


async def test_virtual_switch_never_reloads(client):
    for _ in range(3):
        for model in ("qwen3.5-4b-thinking", "qwen3.5-4b-instruct"):
            await chat(client, model)
    assert echo.RECORDS["qwen3.5-4b"].loads == 1
    for _ in range(2):
        for model in ("gpt-oss-20b-low", "gpt-oss-20b-high"):
            await chat(client, model)
    assert echo.RECORDS["gpt-oss-20b"].loads == 1 and echo.RECORDS["qwen3.5-4b"].loads == 1


async def test_200_concurrent_requests(aiohttp_client, make_app, monkeypatch):
    during_inference: list[str] = []
    checked: list[str] = []
    original = echo.unload

    def checked_unload(model, handle):  # evicting a model mid-inference would show here
        checked.append(model.name)
        if echo.record(model.name).active:
            during_inference.append(model.name)
        return original(model, handle)

    monkeypatch.setattr(checked_unload, "llmux_impl", original.llmux_impl, raising=False)
    monkeypatch.setattr(echo, "unload", checked_unload)
    app = make_app(llm_options={"token_delay": 0.001, "repeat": 2})
    client = await aiohttp_client(app, server_kwargs={"handler_cancellation": True})
    mix = ["qwen3.5-4b-thinking", "qwen3.5-4b-instruct", "qwen3.5-9b-fp8-instruct",
           "Chatterbox", "Chatterbox-Turbo", "gpt-oss-20b-low", "cohere-transcribe"]

    async def one(i: int) -> None:
        model = mix[i % len(mix)] if i % 3 else mix[(i // 7) % len(mix)]
        if model.startswith("Chatterbox"):
            await speak(client, model)
        elif model == "cohere-transcribe":
            await transcribe(client)
        else:
            await chat(client, model, f"request {i}")

    async with asyncio.timeout(120):
        await asyncio.gather(*(one(i) for i in range(200)))
    events = list(app[MANAGER].events)
    evictions = [e for e in events if e["event"] == "evict"]
    assert evictions and all(e["in_flight"] == 0 for e in evictions)
    assert during_inference == [] and len(checked) == len(evictions)
    loads = [e["model"] for e in events if e["event"] == "load"]
    assert sum(r.loads for r in echo.RECORDS.values()) == len(loads)
    print(f"200 requests: {len(evictions)} evictions, loads {dict(Counter(loads))}")
    on = set()
    for e in events:  # no duplicate load: a model loads only when it is not resident
        if e["event"] == "load":
            assert e["model"] not in on
            on.add(e["model"])
        elif e["event"] == "unload":
            on.discard(e["model"])
    assert sorted(on) == await resident(client)
    assert len(loads) == len([e for e in events if e["event"] == "unload"]) + len(on)
    assert {"qwen3.5-4b", "qwen3.5-9b-fp8", "chatterbox", "chatterbox-turbo"} <= set(loads)
    assert all(r.active == 0 for r in echo.RECORDS.values())
