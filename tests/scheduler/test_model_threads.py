"""Each loaded model's load, calls and unload run on threads of its own.

A one-slot model has exactly one thread for as long as it is loaded: llama.cpp's and torch's
OpenMP runtimes give each thread that computes a team of helpers, and more teams than CPUs
make every team sleep between parallel regions (llmux.scheduler.ledger.model_threads).
This backend records the thread of every hook call, through the HTTP API.
"""

from __future__ import annotations

import asyncio
import threading

from llmux import BackendInfo, ContentDelta, Finish, Usage, hookimpl

from ..conftest import AUTH, DEMO_ADMIN_KEY


class ThreadLog:
    """Two one-slot models; every hook call notes (hook, model, thread)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, threading.Thread]] = []
        self.started = threading.Event()

    def threads(self, model: str, hook: str | None = None) -> set[threading.Thread]:
        return {t for h, m, t in self.calls if m == model and hook in (None, h)}

    def note(self, hook: str, model) -> None:
        self.calls.append((hook, model.name, threading.current_thread()))

    @hookimpl
    def backends(self):
        return [BackendInfo("threadlog", frozenset({"llm", "tts"}), parallel=1)]

    @hookimpl
    def load(self, model, device):
        self.note("load", model)
        return object()

    @hookimpl
    def unload(self, model, handle):
        self.note("unload", model)

    @hookimpl
    def infer(self, model, handle, request, cancel):
        self.note("infer", model)
        return self._events(model, request, cancel)

    def _events(self, model, request, cancel):
        self.note("generate", model)
        steps = 200 if "long" in request.messages[-1]["content"] else 3
        for _ in range(steps):
            self.started.set()
            if cancel.cancelled:
                yield Finish("cancelled")
                break
            yield ContentDelta("x")
            if steps > 3:
                cancel.wait(0.01)
        else:
            yield Finish("length")
        yield Usage(1, steps)


MODELS = {
    "physical": {
        "a": {"type": "llm", "backend": "threadlog", "path": "a", "vram_gb": 1,
              "chat_format": "plain"},
        "b": {"type": "llm", "backend": "threadlog", "path": "b", "vram_gb": 1,
              "chat_format": "plain"},
    },
    "virtual": {"a": {"physical": "a"}, "b": {"physical": "b"}},
}


async def chat(client, model: str, text: str = "hi", stream: bool = True) -> int:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}
    async with client.post("/v1/chat/completions", json=body, headers=AUTH) as resp:
        await resp.read()
        return resp.status


async def test_a_models_load_calls_and_unload_share_one_thread(make_client, builtin_pm):
    log = ThreadLog()
    builtin_pm.register(log, name="threadlog")
    client = await make_client(MODELS)
    for i in range(6):  # streamed and not, back to back
        assert await chat(client, "a", stream=i % 2 == 0) == 200
    # A client that leaves mid-stream: its generation stops on the same thread.
    task = asyncio.create_task(chat(client, "a", "long"))
    await asyncio.to_thread(log.started.wait, 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await chat(client, "a") == 200
    admin = {"Authorization": f"Bearer {DEMO_ADMIN_KEY}"}
    async with client.post("/v1/admin/models/a/unload", headers=admin) as resp:
        assert resp.status == 200, await resp.text()

    (thread,) = log.threads("a")  # one thread for everything on "a"
    assert thread is not threading.main_thread()
    hooks = [h for h, m, _ in log.calls if m == "a"]
    assert hooks[0] == "load" and hooks[-1] == "unload"
    assert hooks.count("generate") == 8
    await asyncio.to_thread(thread.join, 10)
    assert not thread.is_alive()  # the thread ended with the unload

    # Another model gets its own thread; "a" loaded again gets a new one.
    assert await chat(client, "b") == 200
    assert await chat(client, "a") == 200
    (b_thread,) = log.threads("b")
    assert b_thread is not thread
    assert len(log.threads("a")) == 2
