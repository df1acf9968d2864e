"""The tiny qwen35 GGUF served through llmux's HTTP app, driven with the official ``openai``
client: chat and streams, reasoning/content/tool calls made real by a grammar, tool results
in the next prompt, thinking on/off prompts, images, errors and cancellation."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import openai
import pytest
from llamacpp_fixtures import KEY, WEATHER_TOOL, data_url, png

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Hello"}]
PARIS = [{"role": "user", "content": "What is the weather in Paris?"}]
REASONING, CONTENT = "The user greets me.", "Hello! Grüße, 世界."


async def collect(stream):
    """Merge a stream's chunks the way OpenAI clients do (tool calls by index)."""
    roles, reasoning, content, calls, finish = [], "", "", {}, None
    async for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        delta = choice.delta
        if delta.role:
            roles.append(delta.role)
        reasoning += getattr(delta, "reasoning_content", None) or ""
        content += delta.content or ""
        for call in delta.tool_calls or ():
            slot = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
            slot["id"] = slot["id"] or call.id
            slot["name"] += call.function.name or ""
            slot["arguments"] += call.function.arguments or ""
        finish = choice.finish_reason or finish
    return roles, reasoning, content, [calls[i] for i in sorted(calls)], finish


async def test_chat_completion(client):
    reply = await client.chat.completions.create(model="tiny-instruct", messages=HELLO,
                                                 max_tokens=8, temperature=0)
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 0
    assert 0 < reply.usage.completion_tokens <= 8


async def test_stream_raw_sse(server):
    """Role delta first, content deltas, a finish_reason, then [DONE]."""
    body = {"model": "tiny-answer", "messages": HELLO, "stream": True,
            "stream_options": {"include_usage": True}}
    async with aiohttp.ClientSession() as http:
        async with http.post(server + "/v1/chat/completions", json=body,
                             headers={"Authorization": f"Bearer {KEY}"}) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            text = await resp.text()
    events = [line[len("data: "):] for line in text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == CONTENT
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == REASONING
    assert sum(1 for d in deltas if d.get("content")) >= 2  # streamed, not one blob
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1]["usage"]["completion_tokens"] > 0


async def test_reasoning_and_content(client):
    reply = await client.chat.completions.create(model="tiny-answer", messages=HELLO)
    message = reply.choices[0].message
    assert message.reasoning_content == REASONING
    assert message.content == CONTENT
    assert reply.choices[0].finish_reason == "stop"
    stream = await client.chat.completions.create(model="tiny-answer", messages=HELLO,
                                                  stream=True)
    roles, reasoning, content, calls, finish = await collect(stream)
    assert (roles, reasoning, content, calls, finish) == (
        ["assistant"], REASONING, CONTENT, [], "stop")


@pytest.mark.parametrize("model, reasoning", [
    ("tiny-tool", "Paris weather, two days."),
    ("tiny-tool-in-think", "I need the weather tool."),  # the call starts before </think>
])
async def test_tool_call(client, model, reasoning):
    reply = await client.chat.completions.create(model=model, messages=PARIS,
                                                 tools=[WEATHER_TOOL])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.reasoning_content == reasoning
    assert not choice.message.content
    [call] = choice.message.tool_calls
    assert call.type == "function" and re.fullmatch(r"call_[0-9a-f]{24}", call.id)
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 2}

    stream = await client.chat.completions.create(model=model, messages=PARIS,
                                                  tools=[WEATHER_TOOL], stream=True)
    roles, streamed_reasoning, content, calls, finish = await collect(stream)
    assert (streamed_reasoning, content, finish) == (reasoning, "", "tool_calls")
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [
        ("get_weather", {"city": "Paris", "days": 2})]


async def test_tool_result_round_trips_into_the_next_prompt(client, prompts):
    first = await client.chat.completions.create(model="tiny-tool", messages=PARIS,
                                                 tools=[WEATHER_TOOL])
    message = first.choices[0].message
    call = message.tool_calls[0]
    history = PARIS + [
        {"role": "assistant", "content": message.content,
         "reasoning_content": message.reasoning_content,
         "tool_calls": [call.model_dump(exclude_none=True)]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny", "temp": 21}'},
    ]
    await client.chat.completions.create(model="tiny-answer", messages=history,
                                         tools=[WEATHER_TOOL])
    assert prompts()[-1].endswith(
        "<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nParis weather, two days.\n</think>\n\n"
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
        "<parameter=days>\n2\n</parameter>\n</function>\n</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n{\"sky\": \"sunny\", \"temp\": 21}\n"
        "</tool_response><|im_end|>\n<|im_start|>assistant\n<think>\n"
    )


async def test_thinking_on_and_off_prompt_tails(client, prompts):
    for model in ("tiny-thinking", "tiny-instruct"):
        await client.chat.completions.create(model=model, messages=HELLO, max_tokens=1)
    on, off = prompts()[-2:]
    assert on == "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n<think>\n"
    assert off == ("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
                   "<think>\n\n</think>\n\n")


def _image_message(url: str) -> list[dict]:
    return [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]}]


async def test_image_tokens_count_in_usage(client):
    text_only = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}]}]
    plain = await client.chat.completions.create(model="tiny-instruct", messages=text_only,
                                                 max_tokens=1)
    seen = await client.chat.completions.create(
        model="tiny-instruct", messages=_image_message(data_url(png(256, 256))), max_tokens=1)
    # 256x256 px / patch 16 = 16x16 patches, merged 2x2 -> 64 image tokens, plus
    # <|vision_start|> and <|vision_end|>.
    assert seen.usage.prompt_tokens - plain.usage.prompt_tokens == 64 + 2


async def test_image_in_a_stream(client):
    stream = await client.chat.completions.create(
        model="tiny-thinking", messages=_image_message(data_url(png(64, 96))), max_tokens=4,
        stream=True, stream_options={"include_usage": True})
    usage = None
    async for chunk in stream:
        usage = chunk.usage or usage
    assert usage.completion_tokens == 4


@pytest.mark.parametrize("model, url, message", [
    ("tiny-instruct", data_url(b"\x89PNG\r\n\x1a\nthis is not a png"), "could not be decoded"),
    ("tiny-instruct", "data:image/png;base64,!!!notbase64", "not valid base64"),
    ("tiny-instruct", "https://example.com/cat.png", "only data URLs"),
    ("tiny-text", data_url(png()), "does not accept images"),
])
async def test_bad_images_are_400(client, model, url, message):
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model=model, messages=_image_message(url))
    assert message in info.value.message
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model=model, messages=_image_message(url),
                                             stream=True)


async def test_cancelled_stream_stops_generating(server, client, caplog):
    import logging

    caplog.set_level(logging.DEBUG, logger="llmux_llamacpp")
    body = {"model": "tiny-endless", "messages": HELLO, "stream": True, "max_tokens": 6000}
    async with aiohttp.ClientSession() as http:
        resp = await http.post(server + "/v1/chat/completions", json=body,
                               headers={"Authorization": f"Bearer {KEY}"})
        assert resp.status == 200
        await resp.content.readline()
        resp.close()  # the client goes away mid-stream

    def summary():
        return [r.getMessage() for r in caplog.records
                if r.name == "llmux_llamacpp" and "completion tokens" in r.getMessage()]

    for _ in range(200):
        if summary():
            break
        await asyncio.sleep(0.05)
    [line] = summary()
    completion = int(re.search(r"(\d+) completion tokens", line).group(1))
    assert "finish cancelled" in line
    # Uncancelled, the grammar runs to several thousand tokens (~1.5 s here).
    assert completion < 1000
    # The model is free again at once.
    reply = await asyncio.wait_for(client.chat.completions.create(
        model="tiny-answer", messages=HELLO), 30)
    assert reply.choices[0].message.content == CONTENT
