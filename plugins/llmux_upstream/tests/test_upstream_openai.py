"""The upstream backend against a real upstream llmux (echo runtime), driven over HTTP."""

from __future__ import annotations

import json

from upstream_fixtures import AUTH


async def post(client, body: dict):
    return await client.post("/v1/chat/completions", json=body, headers=AUTH)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


async def sse(response) -> list[dict]:
    chunks = []
    async for raw in response.content:
        line = raw.decode().strip()
        if line.startswith("data:") and line != "data: [DONE]":
            chunks.append(json.loads(line[5:]))
    return chunks


async def test_non_streaming_chat_carries_content_and_usage(client):
    response = await post(client, {"model": "chat", "messages": user("hello upstream world")})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["model"] == "chat"
    message = body["choices"][0]["message"]
    assert message["content"] == "hello upstream world"
    assert "reasoning_content" not in message  # the instruct upstream model does not think
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 3 and body["usage"]["prompt_tokens"] > 0
    # the core admits options.max_concurrency calls at once (the handle's ``parallel``)
    from llmux.appstate import MANAGER

    (entry,) = client.app[MANAGER].snapshot()["loaded"]
    assert entry["model"] == "remote-instruct" and entry["parallel"] == 4
    assert entry["vram_gb"] == 0


async def test_streaming_chat_streams_deltas_and_usage(client):
    response = await post(client, {"model": "chat", "messages": user("one two three four"),
                                   "stream": True, "stream_options": {"include_usage": True}})
    assert response.status == 200
    chunks = await sse(response)
    content = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert "".join(x for x in content if x) == "one two three four"
    assert sum(1 for x in content if x) == 4  # token by token, not one lump
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 4


async def test_reasoning_maps_to_reasoning_content(client):
    response = await post(client, {"model": "think", "messages": user("why")})
    body = await response.json()
    message = body["choices"][0]["message"]
    assert message["reasoning_content"] == "Reasoning about the request."
    assert message["content"] == "why"


async def test_tool_call_when_the_request_requires_one(client):
    tools = [{"type": "function", "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]
    body = {"model": "chat", "messages": user("weather?"), "tools": tools,
            "tool_choice": "required"}
    response = await post(client, body)
    result = await response.json()
    choice = result["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather" and call["id"]
    assert json.loads(call["function"]["arguments"]) == {"city": "echo"}
    # streamed: the first delta names the call, the rest are argument pieces
    response = await post(client, {**body, "stream": True})
    deltas = [c["choices"][0]["delta"] for c in await sse(response) if c["choices"]]
    calls = [d["tool_calls"][0] for d in deltas if d.get("tool_calls")]
    assert calls[0]["function"]["name"] == "get_weather" and calls[0]["id"]
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"city": "echo"}


def tiny_png() -> str:
    import base64
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode()


async def test_sampling_passes_through(client):
    response = await post(client, {"model": "chat", "messages": user("a b c"),
                                   "temperature": 0.5, "max_tokens": 1})
    assert response.status == 200
    body = await response.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["message"]["content"] == "a "


async def test_an_upstream_400_is_a_400_with_its_message(client):
    # This llmux lets an image through (vision: true); the upstream's text-only model refuses.
    parts = [{"type": "text", "text": "what is this?"},
             {"type": "image_url", "image_url": {"url": tiny_png()}}]
    for stream in (False, True):
        response = await post(client, {"model": "text-only", "stream": stream,
                                       "messages": [{"role": "user", "content": parts}]})
        assert response.status == 400
        error = (await response.json())["error"]
        assert "does not accept images" in error["message"]
        assert error["type"] == "invalid_request_error"


async def test_an_unknown_upstream_model_fails_the_load_clearly(client):
    response = await post(client, {"model": "missing", "messages": user("x")})
    assert response.status == 503
    error = (await response.json())["error"]
    assert "no-such-model" in error["message"] and "qwen3.5-4b-instruct" in error["message"]


async def test_an_unreachable_upstream_is_a_503(client):
    response = await post(client, {"model": "closed", "messages": user("x")})
    assert response.status == 503
    error = (await response.json())["error"]
    assert "unreachable: connection failed" in error["message"]
    assert error["code"] == "model_load_failed"


async def upstream_in_flight(base_url: str, physical: str) -> int:
    import aiohttp
    from upstream_fixtures import UPSTREAM_KEY

    async with aiohttp.ClientSession() as session, session.get(base_url + "/admin/models",
                           headers={"Authorization": f"Bearer {UPSTREAM_KEY}"}) as r:
        body = await r.json()
    loaded = {m["model"]: m for m in body["loaded"]}
    return loaded[physical]["in_flight"] if physical in loaded else 0


async def upstream_tokens(base_url: str, virtual: str) -> float:
    """The upstream's llmux_tokens_generated for ``virtual`` (counted when a stream ends)."""
    import aiohttp
    from upstream_fixtures import UPSTREAM_KEY

    async with aiohttp.ClientSession() as session:
        async with session.get(base_url.removesuffix("/v1") + "/metrics",
                               headers={"Authorization": f"Bearer {UPSTREAM_KEY}"}) as r:
            text = await r.text()
    prefix = f'llmux_tokens_generated_total{{model="{virtual}"}} '
    return sum(float(line[len(prefix):]) for line in text.splitlines()
               if line.startswith(prefix))


async def test_a_client_disconnect_stops_the_upstream_generation(client, upstream):
    import asyncio

    # 5000 words at the demo's 0.01 s a token: a 50 s stream unless it is stopped.
    text = " ".join(f"w{i}" for i in range(5000))
    before = await upstream_tokens(upstream, "qwen3.5-4b-instruct")
    response = await post(client, {"model": "chat", "messages": user(text), "stream": True})
    assert response.status == 200
    await response.content.readline()
    assert await upstream_in_flight(upstream, "qwen3.5-4b") == 1
    response.close()  # the client goes away
    while await upstream_in_flight(upstream, "qwen3.5-4b"):
        await asyncio.sleep(0.05)  # a hang is the pytest timeout's
    # a stream that ran to its end would have counted its 5000 tokens
    assert await upstream_tokens(upstream, "qwen3.5-4b-instruct") == before


async def test_tool_choice_and_response_format_reach_the_upstream(bad_client, misbehaving):
    tools = [{"type": "function", "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"]}
    response_format = {"type": "json_schema",
                       "json_schema": {"name": "place", "schema": schema, "strict": True}}
    body = {"model": "bad-ok", "messages": user("weather?"), "tools": tools,
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "response_format": response_format, "max_tokens": 7}
    response = await post(bad_client, body)
    assert response.status == 200, await response.text()
    assert (await response.json())["choices"][0]["message"]["content"] == "one two"
    (path, _, sent) = misbehaving.requests[-1]
    assert path == "/v1/chat/completions"
    assert sent["model"] == "ok" and sent["stream"] is True and sent["max_tokens"] == 7
    assert sent["tools"] == tools and sent["tool_choice"] == body["tool_choice"]
    assert sent["response_format"] == response_format
