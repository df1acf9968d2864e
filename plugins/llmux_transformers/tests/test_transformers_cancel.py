"""The generation ends before its iterator does, every generation of a loaded model runs on
the model's one compute thread (which the unload ends), and a cancellation reaches inside a
single forward (between decoder layers) and the ASR encoder. Ordering is checked with
events, never with durations."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers_fixtures import ASR_LANGUAGES, PHYSICAL

import llmux_transformers
from llmux import Behaviour, Cancellation, ChatRequest, SamplingParams
from llmux.chatformats import get_format
from llmux.types import ContentDelta, Finish, PhysicalModel, TranscriptionRequest, Usage
from llmux_transformers import chat

pytestmark = pytest.mark.slow

WAIT_S = 60  # a bound on a hung test, never a measurement
LONG = " ".join(["The weather in Paris is sunny today. What is the weather like in Berlin?"] * 6)


def physical(models_dir: Path, name: str = "qwen-text") -> PhysicalModel:
    _, fmt, vision = PHYSICAL[name]
    return PhysicalModel(
        name=name, type="llm", backend="transformers", path=name, models_dir=models_dir,
        vram_gb=0.5, vision=vision, tools=True, chat_format=fmt,
        options={"max_context": 1024},
    )


def request(pm: PhysicalModel, content: str, max_tokens: int = 40) -> ChatRequest:
    return ChatRequest(
        model=pm.name, messages=[{"role": "user", "content": content}],
        behaviour=Behaviour(thinking=False),
        sampling=SamplingParams(max_tokens=max_tokens, temperature=0),
        chat_format=get_format(pm.chat_format),
    )


def decoder_layers(model) -> torch.nn.ModuleList:
    (layers,) = [m for n, m in model.named_modules()
                 if isinstance(m, torch.nn.ModuleList) and n.endswith("language_model.layers")
                 or n == "model.layers"]
    return layers


@pytest.fixture
def loaded(models_dir):
    pm = physical(models_dir)
    handle = llmux_transformers.load(pm, "cpu")
    yield pm, handle
    llmux_transformers.unload(pm, handle)


class Blocker:
    """Forces content tokens; at step ``block_at`` it says so and waits for ``proceed``."""

    def __init__(self, block_at: int) -> None:
        self.block_at = block_at
        self.running, self.proceed = threading.Event(), threading.Event()
        self.thread: threading.Thread | None = None
        self.steps = 0

    def factory(self, request, tokenizer, prompt_ids):
        self.ids = tokenizer(" hello" * 50, add_special_tokens=False)["input_ids"]
        self.start = len(prompt_ids)
        return self

    def __call__(self, input_ids, scores):
        self.thread = threading.current_thread()
        step = input_ids.shape[1] - self.start
        self.steps += 1
        if step == self.block_at:
            self.running.set()
            assert self.proceed.wait(WAIT_S)
        forced = scores.new_full(scores.shape, float("-inf"))
        forced[:, self.ids[step]] = 0.0
        return forced


class _OnError(logging.Handler):
    def __init__(self, event: threading.Event) -> None:
        super().__init__(logging.ERROR)
        self.event = event

    def emit(self, record: logging.LogRecord) -> None:
        self.event.set()


def test_closing_the_iterator_waits_for_the_generation(loaded, monkeypatch, generation_ended):
    pm, handle = loaded
    blocker = Blocker(block_at=3)
    monkeypatch.setattr(chat, "JOIN_SECONDS", 0)  # the close finds the generation running
    handler = _OnError(blocker.proceed)  # ... says so, and only then is it let go
    logging.getLogger(chat.__name__).addHandler(handler)
    chat.EXTRA_LOGITS_PROCESSORS.append(blocker.factory)
    try:
        events = llmux_transformers.infer(pm, handle, request(pm, "Hello"), Cancellation())
        first = next(events)
        assert isinstance(first, ContentDelta)
        assert blocker.running.wait(WAIT_S)
        events.close()  # the client left
        assert blocker.proceed.is_set()  # close found the generation running ...
        assert generation_ended.is_set()  # ... and returned only once it had ended
    finally:
        chat.EXTRA_LOGITS_PROCESSORS.remove(blocker.factory)
        logging.getLogger(chat.__name__).removeHandler(handler)
    assert blocker.steps <= blocker.block_at + 2  # and it stopped generating
    assert not handle.lock.locked()


def test_generations_share_the_models_compute_thread_until_the_unload(models_dir):
    pm = physical(models_dir)
    handle = llmux_transformers.load(pm, "cpu")
    threads = []
    try:
        for content in ("Hello", LONG):  # the second prefilled in slices
            blocker = Blocker(block_at=10**6)  # never blocks: notes the thread
            chat.EXTRA_LOGITS_PROCESSORS.append(blocker.factory)
            try:
                handle.prefill_chunk = 16
                events = list(llmux_transformers.infer(pm, handle, request(pm, content, 4),
                                                       Cancellation()))
            finally:
                chat.EXTRA_LOGITS_PROCESSORS.remove(blocker.factory)
            assert isinstance(events[-1], Usage) and events[-1].completion_tokens == 4
            threads.append(blocker.thread)
    finally:
        llmux_transformers.unload(pm, handle)
    (thread,) = set(threads)  # one thread for every generation of the loaded model
    assert thread is not threading.current_thread()  # not the consumer's
    thread.join(WAIT_S)
    assert not thread.is_alive()  # the unload ended it


@pytest.mark.parametrize("chunk", [0, 16])
def test_cancel_inside_one_forward_stops_at_the_next_layer(loaded, chunk):
    """Unchunked (``generate``'s own prefill is one long forward) and chunked (a slice)."""
    pm, handle = loaded
    handle.prefill_chunk = chunk
    cancel = Cancellation()
    ran: list[int] = []

    def layer_done(index):
        def hook(module, args, output):
            ran.append(index)
            if index == 0:
                cancel.cancel()  # the client leaves during the first layer
        return hook

    layers = decoder_layers(handle.model)
    hooks = [layer.register_forward_hook(layer_done(i)) for i, layer in enumerate(layers)]
    assert len(layers) > 1
    try:
        events = list(llmux_transformers.infer(pm, handle, request(pm, LONG), cancel))
    finally:
        for hook in hooks:
            hook.remove()
    assert ran == [0]  # the forward stopped before layer 1
    assert events[-2] == Finish("cancelled")
    assert isinstance(events[-1], Usage) and events[-1].completion_tokens == 0
    assert events[-1].prompt_tokens > chunk + 1
    assert not any(isinstance(e, ContentDelta) for e in events)
    assert not handle.lock.locked()
    # no thread of its own per request: the model's one compute thread
    assert len([t for t in threading.enumerate()
                if t.name.startswith(f"llmux-{pm.name}-generate")]) == 1
    assert not [h for layer in layers for h in layer._forward_pre_hooks.values()]
    # the model is intact: the next request generates
    handle.prefill_chunk = 1024
    events = list(llmux_transformers.infer(pm, handle, request(pm, "Hi", 3), Cancellation()))
    assert events[-1].completion_tokens == 3


def test_asr_cancel_inside_the_encoder(asr_dir):
    pm = PhysicalModel(name="cohere-asr", type="asr", backend="transformers",
                       path="cohere-asr", models_dir=asr_dir, vram_gb=0.5,
                       options={"languages": ASR_LANGUAGES})
    handle = llmux_transformers.load(pm, "cpu")
    cancel = Cancellation()
    encoder = handle.model.get_encoder()
    layers = encoder.layers
    ran: list[int] = []

    def first_layer(module, args, output):
        ran.append(0)
        cancel.cancel()

    hook = layers[0].register_forward_hook(first_layer)
    samples = (0.1 * np.sin(np.arange(3 * 16000) * 0.05)).astype(np.float32)
    try:
        result = llmux_transformers.infer(
            pm, handle, TranscriptionRequest(samples=samples, sample_rate=16000, language="en"),
            cancel)
    finally:
        hook.remove()
        llmux_transformers.unload(pm, handle)
    assert ran == [0]  # the first encoder layer, then no other layer and no token
    assert result.text == "" and result.segments == ()
