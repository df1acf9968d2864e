"""The HTTP surface on the demo config: auth, listing, errors, chat and streaming."""

from __future__ import annotations

import json

import pytest

from llmux.builtin.echo import RECORDS

from .conftest import AUTH, DEMO_KEY, demo_models
from .test_config import PROD_VIRTUAL


def sse_events(raw: bytes) -> list:
    frames = raw.decode().split("\n\n")
    assert frames[-1] == ""
    out = []
    for frame in frames[:-1]:
        assert frame.startswith("data: "), frame
        payload = frame[len("data: "):]
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def assert_openai_error(body: dict, *, type_: str, param=None, code=None):
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == type_
    assert body["error"]["message"]
    if param is not None:
        assert body["error"]["param"] == param
    if code is not None:
        assert body["error"]["code"] == code


async def test_models_lists_the_16_virtual_models_loaded_or_not(demo_client):
    resp = await demo_client.get("/v1/models", headers=AUTH)
    assert resp.status == 200
    body = await resp.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == PROD_VIRTUAL
    by_id = {m["id"]: m for m in body["data"]}
    assert by_id["qwen3.5-4b-thinking"]["type"] == "llm"
    assert by_id["qwen3.5-4b-thinking"]["capabilities"] == {"vision": True, "tools": True}
    assert by_id["gpt-oss-20b-low"]["capabilities"]["vision"] is False
    assert by_id["Chatterbox"]["type"] == "tts"
    assert by_id["cohere-transcribe"]["type"] == "asr"
    assert all(m["object"] == "model" and m["owned_by"] == "llmux" for m in body["data"])
    one = await demo_client.get("/v1/models/gpt-oss-20b-high", headers=AUTH)
    assert (await one.json())["behaviour"] == {"reasoning_effort": "high"}


@pytest.mark.parametrize("header", [
    None, "Bearer wrong-key-000000000000000", "Basic " + DEMO_KEY, "Bearer", DEMO_KEY,
    "Bearer  ",
])
async def test_v1_needs_a_valid_bearer_key(demo_client, header):
    headers = {"Authorization": header} if header is not None else {}
    for path in ("/v1/models", "/v1/models/qwen3.5-4b-thinking"):
        resp = await demo_client.get(path, headers=headers)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert_openai_error(await resp.json(), type_="authentication_error", code="invalid_api_key")
    resp = await demo_client.post("/v1/chat/completions", headers=headers, json={})
    assert resp.status == 401


async def test_scheme_is_case_insensitive(demo_client):
    resp = await demo_client.get("/v1/models", headers={"Authorization": f"bearer {DEMO_KEY}"})
    assert resp.status == 200


async def test_health_needs_no_key_and_shows_state(demo_client):
    resp = await demo_client.get("/health")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok"
    assert body["loaded"] == []
    assert body["vram"]["budget_gb"] == 16
    assert body["models"] == {"virtual": 16, "physical": 9}


async def test_unknown_route_and_method_are_json(demo_client):
    resp = await demo_client.get("/v1/nothing", headers=AUTH)
    assert resp.status == 404
    assert_openai_error(await resp.json(), type_="invalid_request_error")
    resp = await demo_client.delete("/v1/models", headers=AUTH)
    assert resp.status == 405
    assert "GET" in resp.headers["Allow"]
    assert_openai_error(await resp.json(), type_="invalid_request_error",
                        code="method_not_allowed")


def chat(model="qwen3.5-4b-instruct", content="hello there", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


@pytest.mark.parametrize("body, status, param, code", [
    (chat(model="gpt-5"), 404, "model", "model_not_found"),
    (chat(model="Chatterbox"), 400, "model", None),
    (chat(model="cohere-transcribe"), 400, "model", None),
    ({"messages": []}, 400, "model", None),
    (chat(temperature=3), 400, "temperature", None),
    (chat(max_tokens=0), 400, "max_tokens", None),
    (chat(n=2), 400, "n", None),
    (chat(stop=["a", "b", "c", "d", "e"]), 400, "stop", None),
    ({"model": "qwen3.5-4b-instruct", "messages": [{"role": "wizard", "content": "x"}]},
     400, "messages[0].role", None),
    ({"model": "qwen3.5-4b-instruct", "messages": "hi"}, 400, "messages", None),
    ({"model": "gpt-oss-20b-low", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]},
     400, "messages", None),
    (chat(tools=[{"type": "function"}]), 400, "tools[0]", None),
    (chat(tool_choice={"type": "function", "function": {"name": "nope"}}, tools=[
        {"type": "function", "function": {"name": "get_weather"}}]), 400, "tool_choice", None),
])
async def test_bad_chat_requests_get_openai_errors(demo_client, body, status, param, code):
    resp = await demo_client.post("/v1/chat/completions", headers=AUTH, json=body)
    assert resp.status == status
    assert_openai_error(await resp.json(), type_="invalid_request_error", param=param, code=code)
    # Nothing was loaded for a request that was refused up front.
    assert (await (await demo_client.get("/health")).json())["loaded"] == []


async def test_invalid_json_and_empty_body(demo_client):
    resp = await demo_client.post("/v1/chat/completions", headers=AUTH, data=b"{nope")
    assert resp.status == 400
    assert "not valid JSON" in (await resp.json())["error"]["message"]
    resp = await demo_client.post("/v1/chat/completions", headers=AUTH, data=b"")
    assert resp.status == 400


async def test_chat_completion_shape_and_behaviour(demo_client):
    resp = await demo_client.post("/v1/chat/completions", headers=AUTH,
                                  json=chat("qwen3.5-4b-thinking", "one two three"))
    assert resp.status == 200
    body = await resp.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "qwen3.5-4b-thinking"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == "one two three"
    assert choice["message"]["reasoning_content"] == "Reasoning about the request."
    assert body["usage"]["completion_tokens"] == 3 + 4  # three words, four reasoning words
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 7


async def test_stream_event_order(demo_client):
    resp = await demo_client.post(
        "/v1/chat/completions", headers=AUTH,
        json=chat("gpt-oss-20b-high", "a b c", stream=True,
                  stream_options={"include_usage": True}),
    )
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert resp.headers["Cache-Control"] == "no-cache"
    events = sse_events(await resp.read())
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"] for c in chunks[1:-2]]
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    assert reasoning == "Reasoning at high effort about the request."
    assert "".join(d.get("content", "") for d in deltas) == "a b c"
    first_content = next(i for i, d in enumerate(deltas) if "content" in d)
    assert all("reasoning_content" in d for d in deltas[:first_content])
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None,
                                        "finish_reason": "stop"}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == len(deltas)
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])


async def test_stream_without_usage_has_no_usage_chunk(demo_client):
    resp = await demo_client.post("/v1/chat/completions", headers=AUTH,
                                  json=chat(stream=True))
    events = sse_events(await resp.read())
    assert events[-1] == "[DONE]"
    assert all(e["choices"] for e in events[:-1])


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city", "days"]}}}]


async def test_tool_calls_stream_by_index_and_round_trip(demo_client):
    resp = await demo_client.post("/v1/chat/completions", headers=AUTH, json=chat(
        "qwen3.5-4b-instruct", "weather in Paris?", tools=TOOLS, tool_choice="required",
        stream=True))
    chunks = sse_events(await resp.read())[:-1]
    calls = [d for c in chunks for d in c["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0] == {"index": 0, "id": "call_echo0", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}
    assert all(set(c) == {"index", "function"} and "name" not in c["function"]
               for c in calls[1:])
    arguments = "".join(c["function"]["arguments"] for c in calls)
    assert json.loads(arguments) == {"city": "echo", "days": 1}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"

    follow_up = {"model": "qwen3.5-4b-instruct", "tools": TOOLS, "messages": [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_echo0", "type": "function",
             "function": {"name": "get_weather", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "call_echo0", "content": "sunny"},
    ]}
    resp = await demo_client.post("/v1/chat/completions", headers=AUTH, json=follow_up)
    body = await resp.json()
    assert body["choices"][0]["message"]["content"] == "The tool returned: sunny"
    assert body["choices"][0]["finish_reason"] == "stop"


async def test_tool_calls_non_streaming(demo_client):
    resp = await demo_client.post("/v1/chat/completions", headers=AUTH, json=chat(
        "gpt-oss-20b-low", "weather?", tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    message = (await resp.json())["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [{"id": "call_echo0", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "echo", "days": 1}'}}]


async def test_max_tokens_gives_length(demo_client):
    resp = await demo_client.post("/v1/chat/completions", headers=AUTH,
                                  json=chat(content="a b c d e f", max_tokens=2))
    body = await resp.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2


async def test_missing_backend_is_listed_and_answers_503_with_the_hint(
        tmp_path, builtin_pm, aiohttp_client):
    from llmux.app import create_app
    from llmux.config import load_config
    from llmux.runtime import Runtimes

    from .conftest import write_config

    models = demo_models()
    models["physical"]["gpt-oss-20b"]["backend"] = "transformers"
    models["physical"]["gpt-oss-20b"].pop("options", None)
    missing: list[str] = []
    directory = write_config(tmp_path, models)
    config = load_config(directory, Runtimes(builtin_pm), missing_backends=missing)
    assert missing == [
        "models.yaml::$.physical.gpt-oss-20b.backend: backend 'transformers' is not provided "
        "by any installed plugin (installed: echo); install llmux-transformers "
        "(pip install -e plugins/llmux_transformers)"
    ]
    client = await aiohttp_client(create_app(config, builtin_pm))
    listing = await (await client.get("/v1/models", headers=AUTH)).json()
    entry = next(m for m in listing["data"] if m["id"] == "gpt-oss-20b-low")
    assert entry["available"] is False
    resp = await client.post("/v1/chat/completions", headers=AUTH, json=chat("gpt-oss-20b-low"))
    assert resp.status == 503
    body = await resp.json()
    assert body["error"]["code"] == "backend_not_installed"
    assert "pip install -e plugins/llmux_transformers" in body["error"]["message"]
    # The rest keeps working.
    resp = await client.post("/v1/chat/completions", headers=AUTH, json=chat("qwen3.5-4b-instruct"))
    assert resp.status == 200


async def test_failed_load_leaves_nothing_and_the_server_keeps_serving(make_client):
    models = demo_models()
    models["physical"]["qwen3.5-4b"]["options"] = {"fail_load": True}
    client = await make_client(models)
    resp = await client.post("/v1/chat/completions", headers=AUTH, json=chat("qwen3.5-4b-thinking"))
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "model_load_failed"
    assert (await (await client.get("/health")).json())["loaded"] == []
    resp = await client.post("/v1/chat/completions", headers=AUTH,
                             json=chat("gpt-oss-20b-medium"))
    assert resp.status == 200
    loaded = (await (await client.get("/health")).json())["loaded"]
    assert [m["model"] for m in loaded] == ["gpt-oss-20b"]


async def test_body_limit_gives_json_413(make_client):
    models = demo_models()
    models["server"]["chat_body_limit_mb"] = 0.01
    client = await make_client(models)
    resp = await client.post("/v1/chat/completions", headers=AUTH,
                             json=chat(content="x" * 20000))
    assert resp.status == 413
    assert_openai_error(await resp.json(), type_="invalid_request_error",
                        code="payload_too_large")
    resp = await client.post("/v1/chat/completions", headers=AUTH, json=chat())
    assert resp.status == 200


async def test_virtual_models_of_one_physical_model_share_one_load(demo_client):
    before = RECORDS.get("qwen3.5-9b-fp8")
    loads = before.loads if before else 0
    for name in ("qwen3.5-9b-fp8-thinking", "qwen3.5-9b-fp8-instruct") * 2:
        resp = await demo_client.post("/v1/chat/completions", headers=AUTH, json=chat(name))
        assert resp.status == 200
    assert RECORDS["qwen3.5-9b-fp8"].loads == loads + 1


async def test_a_non_streaming_client_that_leaves_stops_its_generation(make_client):
    import asyncio

    import aiohttp

    models = demo_models()
    models["physical"]["qwen3.5-4b"]["options"] = {"token_delay": 0.02, "repeat": 10_000}
    client = await make_client(models)
    before = RECORDS["qwen3.5-4b"].cancelled if "qwen3.5-4b" in RECORDS else 0
    with pytest.raises(asyncio.TimeoutError):
        await client.post("/v1/chat/completions", headers=AUTH, json=chat("qwen3.5-4b-instruct"),
                          timeout=aiohttp.ClientTimeout(total=0.3))
    for _ in range(50):  # the runtime sees the cancellation and the lease ends, within 1 s
        health = await (await client.get("/health")).json()
        if RECORDS["qwen3.5-4b"].cancelled > before and health["loaded"][0]["in_flight"] == 0:
            break
        await asyncio.sleep(0.02)
    assert RECORDS["qwen3.5-4b"].cancelled == before + 1
    assert health["loaded"][0]["in_flight"] == 0
