"""Prompt-prefix reuse, end to end through the plugin's hooks on the tiny random-weight
Qwen3.5 (Gated DeltaNet + full attention) and gpt-oss (sliding window + full attention):
a restored state gives exactly the greedy tokens of a cold run, ``cached_tokens`` is the
length of the snapshot reused, an edit is never reused past, the store survives unload +
load, and an image prompt reuses and keeps only what comes before its first image."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers_fixtures import PHYSICAL, TOOLS

import llmux_transformers
from llmux import Cancellation, ChatRequest, SamplingParams
from llmux.chatformats import get_format
from llmux.types import Behaviour, PhysicalModel, Usage
from llmux_transformers import chat, prefix_cache
from llmux_transformers.prefix_cache import PrefixStore

pytestmark = pytest.mark.slow

MODELS = ["qwen-text", "gpt-oss"]
SYSTEM = "You are a helpful assistant. Call get_weather for the weather in a city. " * 4
USER = "What is the weather like in Paris?"
CALL = {"id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
RESULT = '{"city": "Paris", "unit": "celsius", "days": 3}'


def physical(models_dir: Path, name: str, **options) -> PhysicalModel:
    _, fmt, vision = PHYSICAL[name]
    return PhysicalModel(
        name=name, type="llm", backend="transformers", path=name, models_dir=models_dir,
        vram_gb=0.5, vision=vision, tools=True, chat_format=fmt,
        options={"max_context": 1024, "prefill_chunk": 16, **options},
    )


class Run:
    """One request's greedy tokens, prompt ids, events (without the usage) and usage."""

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.prompt: list[int] = []
        self.events: list = []
        self.usage: Usage | None = None

    def __call__(self, input_ids, scores):
        self.tokens.append(int(scores[0].argmax()))
        return scores

    def factory(self, request, tokenizer, prompt_ids):
        self.prompt = list(prompt_ids)
        return self


def ask(pm, handle, messages, *, tools=None, thinking=None) -> Run:
    run = Run()
    request = ChatRequest(
        model=pm.name, messages=messages, tools=tools, behaviour=Behaviour(thinking=thinking),
        sampling=SamplingParams(max_tokens=8, temperature=0, seed=0),
        chat_format=get_format(pm.chat_format),
    )
    chat.EXTRA_LOGITS_PROCESSORS.append(run.factory)
    try:
        events = list(llmux_transformers.infer(pm, handle, request, Cancellation()))
    finally:
        chat.EXTRA_LOGITS_PROCESSORS.remove(run.factory)
    run.events, run.usage = events[:-1], events[-1]
    assert isinstance(run.usage, Usage) and len(run.tokens) == 8
    return run


def cold(pm, handle, messages, **kwargs) -> tuple[Run, Run]:
    """The same request from a fresh store and with no store at all (``generate``'s own
    one-shot prefill)."""
    kept, chunk = handle.prefixes, handle.prefill_chunk
    try:
        handle.prefixes = PrefixStore(kept.limit)
        fresh = ask(pm, handle, messages, **kwargs)
        handle.prefixes, handle.prefill_chunk = None, 4096  # the whole prompt in one forward
        off = ask(pm, handle, messages, **kwargs)
    finally:
        handle.prefixes, handle.prefill_chunk = kept, chunk
    assert fresh.usage.cached_tokens == off.usage.cached_tokens == 0
    return fresh, off


def assert_same(warm: Run, *colds: Run) -> None:
    for c in colds:
        assert warm.prompt == c.prompt
        assert warm.tokens == c.tokens
        assert warm.events == c.events
        assert warm.usage.prompt_tokens == c.usage.prompt_tokens


def common(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@pytest.fixture
def load(models_dir):
    """Loads a model on the CPU with an empty store of its own; unloads at the end."""
    loaded = []

    def _load(name, **options):
        pm = physical(models_dir, name, **options)
        handle = llmux_transformers.load(pm, "cpu")
        if handle.prefixes is not None:
            handle.prefixes.clear()
        loaded.append((pm, handle))
        return pm, handle

    yield _load
    for pm, handle in loaded:
        if handle.model is not None:
            llmux_transformers.unload(pm, handle)


def agent_turns():
    first = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
    second = first + [
        {"role": "assistant", "content": "", "reasoning_content": "I should call get_weather.",
         "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": RESULT},
    ]
    return first, second


@pytest.mark.parametrize("name", MODELS)
def test_agent_loop_reuses_the_whole_previous_prompt(load, name):
    """Append-only: turn 2 continues from turn 1's state of all but its last token (the
    generation prompt's end stays to run), and generates what a cold run generates."""
    pm, handle = load(name)
    first, second = agent_turns()
    one = ask(pm, handle, first, tools=TOOLS)
    assert one.usage.cached_tokens == 0
    two = ask(pm, handle, second, tools=TOOLS)
    assert two.prompt[:len(one.prompt) - 1] == one.prompt[:-1]
    assert two.usage.cached_tokens == len(one.prompt) - 1
    assert_same(two, *cold(pm, handle, second, tools=TOOLS))
    again = ask(pm, handle, second, tools=TOOLS)  # a retry: everything but the last token
    assert again.usage.cached_tokens == len(two.prompt) - 1
    assert_same(again, two)


@pytest.mark.parametrize("name", MODELS)
def test_thinking_chat_reuses_up_to_the_dropped_reasoning(load, name):
    """The templates drop an earlier turn's reasoning: the next prompt leaves this one after
    its last message (Qwen3.5: ``<|im_start|>assistant\\n`` then the answer, not
    ``<think>``), so the state there is reused, not the whole prompt's."""
    pm, handle = load(name)
    turns = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]]
    for answer, question in [("It is sunny in Paris.", "And in Berlin?"),
                             ("It rains in Berlin.", "Thanks. What about Rome?")]:
        turns.append(turns[-1] + [
            {"role": "assistant", "content": answer,
             "reasoning_content": "Let me think about the weather."},
            {"role": "user", "content": question},
        ])
    runs = [ask(pm, handle, messages, thinking=True) for messages in turns]
    assert runs[0].usage.cached_tokens == 0
    tokenizer = handle.tokenizer
    for before, after, messages in zip(runs, runs[1:], turns):
        prepared = get_format(pm.chat_format).prepare_messages(messages, Behaviour(thinking=True))
        text = tokenizer.apply_chat_template(prepared, tokenize=False, add_generation_prompt=False,
                                             enable_thinking=True)
        end = len(tokenizer(text, add_special_tokens=False)["input_ids"])  # the last message's end
        expected = len(before.prompt) - 1 if name == "gpt-oss" else end
        assert after.usage.cached_tokens == expected > 0
        assert after.usage.cached_tokens <= common(before.prompt, after.prompt)
        assert common(before.prompt, after.prompt) < len(before.prompt) - 1 or name == "gpt-oss"
    assert_same(runs[-1], *cold(pm, handle, turns[-1], thinking=True))


@pytest.mark.parametrize("name", MODELS)
def test_an_edit_is_never_reused_past(load, name):
    pm, handle = load(name)
    first = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER},
             {"role": "assistant", "content": "It is sunny."},
             {"role": "user", "content": "And in Berlin?"}]
    one = ask(pm, handle, first)
    stored = sorted(map(len, handle.prefixes._entries))
    edited = [dict(m) for m in first] + [{"role": "assistant", "content": "It rains."},
                                         {"role": "user", "content": "Thanks."}]
    edited[1]["content"] = "What is the weather like in Rome?"
    two = ask(pm, handle, edited)
    edit_at = common(one.prompt, two.prompt)
    assert edit_at < len(one.prompt) - 20
    # turn 1 left states past the edit, and one at the end of the system block before it
    assert stored[-1] == len(one.prompt) - 1
    assert two.usage.cached_tokens == stored[0] <= edit_at
    assert_same(two, *cold(pm, handle, edited))


@pytest.mark.parametrize("name", MODELS)
def test_unload_and_load_keeps_the_conversation(load, name):
    pm, handle = load(name)
    first, second = agent_turns()
    one = ask(pm, handle, first, tools=TOOLS)
    store = handle.prefixes
    llmux_transformers.unload(pm, handle)
    again = llmux_transformers.load(pm, "cpu")
    try:
        assert again.prefixes is store and len(store) > 0
        two = ask(pm, again, second, tools=TOOLS)
        assert two.usage.cached_tokens == len(one.prompt) - 1
        assert_same(two, *cold(pm, again, second, tools=TOOLS))
    finally:
        llmux_transformers.unload(pm, again)
    off = llmux_transformers.load(physical(pm.models_dir, name, prompt_cache_gb=0), "cpu")
    try:
        assert off.prefixes is None and store not in prefix_cache.stores().values()
        assert ask(pm, off, second, tools=TOOLS).usage.cached_tokens == 0
    finally:
        llmux_transformers.unload(pm, off)


def test_the_byte_bound_holds(load):
    pm, handle = load("qwen-text")
    store = handle.prefixes
    asks = [[{"role": "system", "content": f"System {i}. " + SYSTEM},
             {"role": "user", "content": USER}] for i in range(4)]
    ask(pm, handle, asks[0])
    one = store.bytes  # the snapshots of one such prompt
    assert one > 0
    store.resize(int(one * 1.5))
    for messages in asks[1:]:
        ask(pm, handle, messages)
        assert 0 < store.bytes <= store.limit
    last = ask(pm, handle, asks[-1])
    assert last.usage.cached_tokens == len(last.prompt) - 1  # the newest stays
    assert ask(pm, handle, asks[0]).usage.cached_tokens == 0  # the oldest went
    store.resize(1000)  # smaller than any snapshot: nothing kept, nothing reused
    assert len(store) == 0
    assert ask(pm, handle, asks[-1]).usage.cached_tokens == 0 and store.bytes == 0


def test_an_image_prompt_reuses_up_to_its_first_image(load):
    """The state before the first image token is reused and kept; the images and what
    follows them are always processed; the same tokens as cold."""
    from test_prefill import _png

    pm, handle = load("qwen-vision")
    image_token = handle.vision.image_token_id
    text = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
    one = ask(pm, handle, text)
    image = text + [
        {"role": "assistant", "content": "It is sunny."},
        {"role": "user", "content": [
            {"type": "text", "text": "And what does this show?"},
            {"type": "image_url", "image_url": {"url": _png(64, 1)}}]}]
    two = ask(pm, handle, image)
    first = two.prompt.index(image_token)
    assert 0 < two.usage.cached_tokens <= common(one.prompt, two.prompt) < first
    assert_same(two, *cold(pm, handle, image))
    again = ask(pm, handle, image)
    assert again.usage.cached_tokens == first  # the state up to the image, kept by turn 2
    assert_same(again, two)
    assert all(image_token not in key for key in handle.prefixes._entries)


@pytest.mark.parametrize("model", ["qwen-text-thinking", "gpt-oss-low"])
def test_cached_tokens_over_http(client, model):
    """Through the real app: OpenAI's ``usage.prompt_tokens_details.cached_tokens``, in the
    reply and in the streamed usage chunk."""
    first, second = agent_turns()
    first[0] = {"role": "system", "content": f"Over HTTP, {model}. " + SYSTEM}
    second[0] = first[0]
    one = client.chat.completions.create(model=model, messages=first, tools=TOOLS,
                                         max_tokens=4, temperature=0)
    assert one.usage.prompt_tokens_details.cached_tokens == 0
    two = client.chat.completions.create(model=model, messages=second, tools=TOOLS,
                                         max_tokens=4, temperature=0)
    assert two.usage.prompt_tokens_details.cached_tokens == one.usage.prompt_tokens - 1
    stream = client.chat.completions.create(model=model, messages=second, tools=TOOLS,
                                            max_tokens=4, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    usage = [c.usage for c in stream if c.usage is not None][-1]
    assert usage.prompt_tokens_details.cached_tokens == two.usage.prompt_tokens - 1
