"""Chunked prefill: the same greedy tokens as one whole-prompt forward, for both families and
for image prompts; a cancellation stops it between slices."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
import torch
from transformers_fixtures import PHYSICAL

import llmux_transformers
from llmux import Cancellation, ChatRequest, SamplingParams
from llmux.chatformats import get_format
from llmux.types import PhysicalModel
from llmux_transformers import chat

pytestmark = pytest.mark.slow

LONG = " ".join(["The weather in Paris is sunny today. What is the weather like in Berlin?"] * 12)
NEW_TOKENS = 6


def physical(models_dir: Path, name: str) -> PhysicalModel:
    _, fmt, vision = PHYSICAL[name]
    return PhysicalModel(
        name=name, type="llm", backend="transformers", path=name, models_dir=models_dir,
        vram_gb=0.5, vision=vision, tools=True, chat_format=fmt,
        options={"max_context": 1024, "prompt_cache_gb": 0},  # every prefill cold, counted
    )


class Steps:
    """A logits processor recording, per generated token, the greedy choice and the scores."""

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.scores: list[torch.Tensor] = []
        self.prompt_length = 0

    def __call__(self, input_ids, scores):
        self.tokens.append(int(scores[0].argmax()))
        self.scores.append(scores[0].clone())
        return scores

    def factory(self, request, tokenizer, prompt_ids):
        self.prompt_length = len(prompt_ids)
        return self


def run(pm: PhysicalModel, handle, content, chunk: int, cancel: Cancellation | None = None):
    """Greedy tokens and the events of one chat request with ``prefill_chunk = chunk``."""
    handle.prefill_chunk = chunk
    steps = Steps()
    request = ChatRequest(
        model=pm.name, messages=[{"role": "user", "content": content}],
        sampling=SamplingParams(max_tokens=NEW_TOKENS, temperature=0),
        chat_format=get_format(pm.chat_format),
    )
    chat.EXTRA_LOGITS_PROCESSORS.append(steps.factory)
    try:
        events = list(llmux_transformers.infer(pm, handle, request, cancel or Cancellation()))
    finally:
        chat.EXTRA_LOGITS_PROCESSORS.remove(steps.factory)
    return steps, events


class Forwards:
    """Counts the model's forwards (and their lengths); cancels after ``cancel_after``."""

    def __init__(self, model, cancel: Cancellation | None = None, cancel_after: int = 0) -> None:
        self.lengths: list[int] = []
        self.cancel, self.cancel_after = cancel, cancel_after
        self.handle = model.register_forward_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs, output):
        self.lengths.append(kwargs["input_ids"].shape[1])
        if self.cancel is not None and len(self.lengths) == self.cancel_after:
            self.cancel.cancel()

    def remove(self) -> None:
        self.handle.remove()


@pytest.mark.parametrize("name", ["qwen-text", "gpt-oss"])
def test_chunked_prefill_generates_the_same_tokens(models_dir, name):
    """Qwen3.5 (Gated DeltaNet + full attention) and gpt-oss (sliding window 128 + full
    attention, llmux_sinks) over a prompt of dozens of 7-token slices, longer than the
    sliding window: the same greedy tokens and the same first-token scores as unchunked."""
    pm = physical(models_dir, name)
    handle = llmux_transformers.load(pm, "cpu")
    expected = "llmux_sinks" if name == "gpt-oss" else "sdpa"
    assert handle.model.config._attn_implementation == expected
    whole, whole_events = run(pm, handle, LONG, chunk=4096)
    forwards = Forwards(handle.model)
    try:
        sliced, sliced_events = run(pm, handle, LONG, chunk=7)
    finally:
        forwards.remove()
    prompt = sliced.prompt_length
    assert prompt > 200  # longer than gpt-oss's window of 128
    # prompt - 1 tokens in 7-token slices, then generate: the last prompt token, then decode
    slices = -(-(prompt - 1) // 7)
    last = (prompt - 1) - 7 * (slices - 1)
    assert forwards.lengths[:slices + 1] == [7] * (slices - 1) + [last, 1]
    assert sliced.tokens == whole.tokens and len(whole.tokens) == NEW_TOKENS
    torch.testing.assert_close(sliced.scores[0], whole.scores[0], rtol=1e-4, atol=1e-4)
    assert sliced_events == whole_events
    llmux_transformers.unload(pm, handle)


def _png(size: int, seed: int) -> str:
    from PIL import Image

    gen = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (size, size, 3), dtype=torch.uint8, generator=gen)
    buf = io.BytesIO()
    Image.fromarray(pixels.numpy()).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_chunked_prefill_of_an_image_prompt(models_dir):
    """Two images, each spread over slices of 3 tokens, text before, between and after:
    the same greedy tokens as the unchunked prompt (encoded features and the multimodal RoPE
    positions go to the right slices), and a text prompt after it is not shifted by the
    image's RoPE deltas."""
    pm = physical(models_dir, "qwen-vision")
    handle = llmux_transformers.load(pm, "cpu")
    content = [
        {"type": "text", "text": "Describe this image."},
        {"type": "image_url", "image_url": {"url": _png(64, 1)}},
        {"type": "text", "text": "And this one."},
        {"type": "image_url", "image_url": {"url": _png(64, 2)}},
        {"type": "text", "text": LONG[:200]},
    ]
    whole, _ = run(pm, handle, content, chunk=4096)
    sliced, _ = run(pm, handle, content, chunk=3)
    assert sliced.tokens == whole.tokens
    torch.testing.assert_close(sliced.scores[0], whole.scores[0], rtol=1e-4, atol=1e-4)
    text_sliced, _ = run(pm, handle, LONG, chunk=7)
    text_whole, _ = run(pm, handle, LONG, chunk=4096)
    assert text_sliced.tokens == text_whole.tokens
    llmux_transformers.unload(pm, handle)


def test_cancel_during_prefill_stops_between_slices(models_dir):
    pm = physical(models_dir, "qwen-text")
    handle = llmux_transformers.load(pm, "cpu")
    cancel = Cancellation()
    forwards = Forwards(handle.model, cancel, cancel_after=2)
    try:
        steps, events = run(pm, handle, LONG, chunk=7, cancel=cancel)
    finally:
        forwards.remove()
    assert forwards.lengths == [7, 7]  # no third slice, no generate
    assert steps.tokens == []
    finish, usage = events[-2:]
    assert finish.reason == "cancelled" and usage.completion_tokens == 0
    assert not handle.lock.locked()
    llmux_transformers.unload(pm, handle)
