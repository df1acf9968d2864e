"""Cancellation reaches the prompt's evaluation, and ``unload`` never frees a model under a
running call: ordering checked with events, never with durations."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from llamacpp_fixtures import ANSWER, MODEL_FILE, gbnf

import llmux_llamacpp as plugin
from llmux import (
    Behaviour,
    Cancellation,
    ChatRequest,
    ContentDelta,
    Finish,
    PhysicalModel,
    SamplingParams,
    Usage,
)
from llmux.chatformats import get_format

N_BATCH = 8
LONG = [{"role": "user", "content": "Hello there, " * 40}]
WAIT_S = 60  # a bound on a hung test, never a measurement


def physical(tiny_dir: Path) -> PhysicalModel:
    opts = {"model_file": MODEL_FILE, "n_ctx": 2048, "n_threads": 2, "n_batch": N_BATCH}
    return PhysicalModel(
        name="tiny", type="llm", backend="llamacpp", path=tiny_dir.name,
        models_dir=tiny_dir.parent, vram_gb=0.5, chat_format="qwen3_5", options=opts,
    )


def chat(messages, grammar=None) -> ChatRequest:
    return ChatRequest(
        model="tiny", messages=messages, chat_format=get_format("qwen3_5"),
        behaviour=Behaviour(thinking=True, options={"grammar": grammar} if grammar else {}),
        sampling=SamplingParams(temperature=0.0),
    )


@pytest.fixture
def loaded(tiny_dir):
    model = physical(tiny_dir)
    handle = plugin.load(model, None)
    yield model, handle
    plugin.unload(model, handle)


def answer(loaded) -> str:
    events = list(plugin.infer(*loaded, chat(LONG, gbnf(ANSWER)), Cancellation()))
    return "".join(e.text for e in events if isinstance(e, ContentDelta))


def test_cancel_between_prompt_slices_produces_no_token(loaded):
    model, handle = loaded
    llama = handle.llama
    slices: list[int] = []
    cancel = Cancellation()
    original = llama.eval

    def first_slice_then_cancel(tokens):
        slices.append(len(tokens))
        original(tokens)
        cancel.cancel()

    llama.eval = first_slice_then_cancel
    try:
        events = list(plugin.infer(model, handle, chat(LONG), cancel))
    finally:
        del llama.eval
    assert slices == [N_BATCH]  # one slice evaluated, then it stopped
    assert events[-2] == Finish("cancelled")
    usage = events[-1]
    assert isinstance(usage, Usage) and usage.completion_tokens == 0
    assert usage.prompt_tokens > 4 * N_BATCH
    assert not any(isinstance(e, ContentDelta) for e in events)
    assert not handle.lock.locked()
    # The half-evaluated prompt leaves a consistent context: the next request is right.
    assert answer(loaded) == "Hello! Grüße, 世界."


def test_the_prompt_is_evaluated_in_n_batch_slices(loaded):
    model, handle = loaded
    llama = handle.llama
    slices: list[int] = []
    original = llama.eval

    def record(tokens):
        slices.append(len(tokens))
        original(tokens)

    llama.eval = record
    try:
        assert answer(loaded) == "Hello! Grüße, 世界."
    finally:
        del llama.eval
    assert slices and max(slices) <= N_BATCH


class _WatchedLock:
    """A lock that says when a thread other than its holder starts waiting for it."""

    def __init__(self, waiting: threading.Event) -> None:
        self._lock = threading.Lock()
        self._waiting = waiting
        self.holder: int | None = None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self.holder is not None and self.holder != threading.get_ident():
            self._waiting.set()
        got = self._lock.acquire(blocking, timeout)
        if got:
            self.holder = threading.get_ident()
        return got

    def release(self) -> None:
        self.holder = None
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    __enter__ = acquire

    def __exit__(self, *exc) -> None:
        self.release()


def test_unload_waits_for_a_running_call(tiny_dir):
    model = physical(tiny_dir)
    handle = plugin.load(model, None)
    llama = handle.llama
    in_call, unload_waiting = threading.Event(), threading.Event()
    handle.lock = _WatchedLock(unload_waiting)
    order: list[str] = []
    original = llama.eval

    def blocking_eval(tokens):
        in_call.set()
        # the model is in use here: unload must be queued on the lock, not freeing it
        assert unload_waiting.wait(WAIT_S), "unload did not wait for the handle's lock"
        order.append("call still running")
        original(tokens)
        order.append("call evaluated")
        llama.eval = original

    llama.eval = blocking_eval
    results: list = []
    worker = threading.Thread(target=lambda: results.append(
        list(plugin.infer(model, handle, chat(LONG, gbnf(ANSWER)), Cancellation()))))
    worker.start()
    assert in_call.wait(WAIT_S)

    def unload():
        plugin.unload(model, handle)
        order.append("unloaded")

    unloader = threading.Thread(target=unload)
    unloader.start()
    worker.join(WAIT_S)
    unloader.join(WAIT_S)
    assert not worker.is_alive() and not unloader.is_alive()
    assert order == ["call still running", "call evaluated", "unloaded"]
    assert "".join(e.text for e in results[0] if isinstance(e, ContentDelta)) == \
        "Hello! Grüße, 世界."
    assert not hasattr(handle, "llama")
