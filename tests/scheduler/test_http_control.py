"""Disconnects, the bounded queue, the admin routes and /metrics, through HTTP."""

from __future__ import annotations

import asyncio

from llmux.builtin import echo

from .helpers import ADMIN, USER, chat, health, open_stream, resident


async def test_streaming_disconnect(aiohttp_client, make_app):
    app = make_app(llm_options={"token_delay": 0.02, "repeat": 500})
    client = await aiohttp_client(app, server_kwargs={"handler_cancellation": True})
    body = {"model": "qwen3.5-4b-instruct", "stream": True,
            "messages": [{"role": "user", "content": "tell me a long story"}]}
    resp = await client.post("/v1/chat/completions", json=body, headers=USER)
    assert resp.status == 200
    await resp.content.readline()
    async with client.get("/health") as health:
        assert (await health.json())["loaded"][0]["in_flight"] == 1
    resp.close()  # the client disconnects mid-stream
    left = asyncio.get_running_loop().time()
    async with asyncio.timeout(1.0):
        while True:
            async with client.get("/health") as health:
                loaded = (await health.json())["loaded"]
            rec = echo.record("qwen3.5-4b")
            if loaded[0]["in_flight"] == 0 and rec.cancelled == 1 and rec.active == 0:
                break
            await asyncio.sleep(0.02)
    assert asyncio.get_running_loop().time() - left < 1.0
    assert rec.tokens < 500 * 4  # generation stopped early


async def test_admin_routes(client):
    async with client.post("/v1/admin/models/chatterbox/load", headers=USER) as resp:
        assert resp.status == 403
        error = (await resp.json())["error"]
        assert error["type"] == "permission_error" and "admin: true" in error["message"]
    async with client.get("/v1/admin/models") as resp:
        assert resp.status == 401
    async with client.post("/v1/admin/models/Chatterbox/load", headers=ADMIN) as resp:
        assert resp.status == 200
        assert [m["model"] for m in (await resp.json())["loaded"]] == ["chatterbox"]
    async with client.get("/v1/admin/models", headers=ADMIN) as resp:
        assert [m["model"] for m in (await resp.json())["loaded"]] == ["chatterbox"]
    async with client.post("/v1/admin/models/chatterbox/unload", headers=ADMIN) as resp:
        assert (await resp.json())["unloaded"] is True
    async with client.post("/v1/admin/models/chatterbox/unload", headers=ADMIN) as resp:
        assert (await resp.json())["unloaded"] is False
    async with client.post("/v1/admin/models/nope/load", headers=ADMIN) as resp:
        assert resp.status == 404
    assert await resident(client) == []


async def test_metrics(client):
    await chat(client, "qwen3.5-4b-instruct")
    async with client.get("/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    for line in ('llmux_model_loads_total{model="qwen3.5-4b",reason="request"} 1.0',
                 "llmux_queue_depth 0.0", 'llmux_requests_in_flight{model="qwen3.5-4b"} 0.0',
                 'llmux_model_load_seconds_count{model="qwen3.5-4b"} 1.0'):
        assert line in text


async def test_metrics_can_require_auth(aiohttp_client, make_app):
    client = await aiohttp_client(make_app(metrics_require_auth=True))
    async with client.get("/metrics") as resp:
        assert resp.status == 401
    async with client.get("/metrics", headers=USER) as resp:
        assert resp.status == 200


async def test_queued_client_that_leaves_is_dropped(aiohttp_client, make_app):
    app = make_app(llm_options={"token_delay": 0.02, "repeat": 500})
    client = await aiohttp_client(app, server_kwargs={"handler_cancellation": True})
    stream = await open_stream(client, "qwen3.5-4b-instruct")  # holds the 4B
    queued = asyncio.create_task(chat(client, "gpt-oss-20b-low"))
    async with asyncio.timeout(2):
        while (await health(client))["waiting"] != 1:
            await asyncio.sleep(0.01)
    queued.cancel()  # the waiting client disconnects
    async with asyncio.timeout(2):
        while (await health(client))["waiting"] != 0:
            await asyncio.sleep(0.01)
    stream.close()
    async with asyncio.timeout(2):
        while (await health(client))["loaded"][0]["in_flight"]:
            await asyncio.sleep(0.01)
    assert await resident(client) == ["qwen3.5-4b"]
    assert "gpt-oss-20b" not in echo.RECORDS  # nobody loads a model for a client that left


async def test_full_queue_answers_503_with_retry_after(aiohttp_client, make_app):
    app = make_app(llm_options={"token_delay": 0.02, "repeat": 500}, max_waiting=1)
    client = await aiohttp_client(app, server_kwargs={"handler_cancellation": True})
    stream = await open_stream(client, "qwen3.5-4b-instruct")
    queued = asyncio.create_task(chat(client, "gpt-oss-20b-low"))
    async with asyncio.timeout(2):
        while (await health(client))["waiting"] != 1:
            await asyncio.sleep(0.01)
    body = {"model": "qwen3.5-9b-fp8-instruct", "messages": [{"role": "user", "content": "hi"}]}
    async with client.post("/v1/chat/completions", json=body, headers=USER) as resp:
        assert resp.status == 503
        assert int(resp.headers["Retry-After"]) >= 1
        assert (await resp.json())["error"]["code"] == "service_unavailable"
    stream.close()
    async with asyncio.timeout(2):  # the swap happens once the stream has gone
        while await resident(client) != ["gpt-oss-20b"]:
            await asyncio.sleep(0.01)
    queued.cancel()
