"""A chat answer reaches the client as soon as its last event (Usage) is out, while the
runtime finishes its own work after it (llama.cpp saves the conversation's state) under the
request's lease: the model stays busy, the client does not wait."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import pytest

from llmux import BackendInfo, ContentDelta, Finish, Usage, hookimpl

from .conftest import AUTH


class Tail:
    """A runtime whose generator, after its Usage, waits until the test lets it go."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.in_tail = threading.Event()
        self.done = threading.Event()
        self.fail = False

    @hookimpl
    def backends(self):
        return [BackendInfo("tail", frozenset({"llm"}), parallel=1)]

    @hookimpl
    def load(self, model, device):
        return object()

    @hookimpl
    def unload(self, model, handle):
        pass

    @hookimpl
    def infer(self, model, handle, request, cancel):
        return self._events(cancel)

    def _events(self, cancel):
        yield ContentDelta("hello")
        yield Finish("stop")
        yield Usage(3, 1)
        self.in_tail.set()
        self.go.wait(30)
        self.done.set()
        if self.fail:
            raise RuntimeError("saving the state failed")
        yield ContentDelta("late")  # against the contract: dropped, with a warning


MODELS = {
    "physical": {"m": {"type": "llm", "backend": "tail", "path": "m", "vram_gb": 1,
                       "chat_format": "plain"}},
    "virtual": {"m": {"physical": "m"}},
}


async def in_flight(client) -> int:
    async with client.get("/health") as resp:
        snap = await resp.json()
    return sum(m["in_flight"] for m in snap["loaded"] if m["model"] == "m")


@pytest.mark.parametrize("stream", [True, False])
async def test_the_answer_is_complete_before_the_runtime_has_finished(make_client, builtin_pm,
                                                                      stream, caplog):
    tail = Tail()
    builtin_pm.register(tail, name="tail")
    client = await make_client(MODELS)
    body = {"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    async with client.post("/v1/chat/completions", json=body, headers=AUTH) as resp:
        assert resp.status == 200
        raw = await asyncio.wait_for(resp.read(), 10)  # the whole body, while the tail waits
    assert tail.in_tail.is_set() and not tail.done.is_set()
    if stream:
        frames = [f[6:] for f in raw.decode().split("\n\n") if f.startswith("data: ")]
        assert frames[-1] == "[DONE]"
        chunks = [json.loads(f) for f in frames[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content") or ""
                       for c in chunks if c["choices"])
        assert text == "hello"
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    else:
        answer = json.loads(raw)
        assert answer["choices"][0]["message"]["content"] == "hello"
        assert answer["usage"]["completion_tokens"] == 1
    # The model is still in use until the runtime has finished.
    assert await in_flight(client) == 1
    tail.fail = True
    with caplog.at_level(logging.ERROR, logger="llmux.bridge"):
        tail.go.set()
        async with asyncio.timeout(10):
            while await in_flight(client):
                await asyncio.sleep(0.01)
    assert "raised after its answer was complete" in caplog.text  # logged, nothing else
    # The server goes on: the next request is answered in full.
    tail.go.set()
    async with client.post("/v1/chat/completions", json=body, headers=AUTH) as resp:
        assert resp.status == 200


async def test_events_after_usage_are_dropped_with_a_warning(make_client, builtin_pm, caplog):
    tail = Tail()
    tail.go.set()
    builtin_pm.register(tail, name="tail")
    client = await make_client(MODELS)
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with caplog.at_level(logging.WARNING, logger="llmux.bridge"):
        async with client.post("/v1/chat/completions", json=body, headers=AUTH) as resp:
            raw = await resp.read()
        async with asyncio.timeout(10):
            while await in_flight(client):
                await asyncio.sleep(0.01)
    assert b"late" not in raw
    assert "1 event(s) after Usage" in caplog.text
