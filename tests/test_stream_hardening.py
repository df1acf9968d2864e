"""Streams that clients stop reading, and runtime errors that must not leak their detail."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket

import pytest

from llmux.builtin import echo

from .conftest import AUTH, DEMO_ADMIN_KEY
from .scheduler.helpers import models_yaml

ADMIN = {"Authorization": f"Bearer {DEMO_ADMIN_KEY}"}
MODEL = "qwen3.5-4b-instruct"


@pytest.fixture(autouse=True)
def fresh_records():
    """The echo runtime counts per model name across tests: start each test at zero."""
    echo.RECORDS.clear()
    yield
    echo.RECORDS.clear()


async def until(predicate, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


async def health(client) -> dict:
    async with client.get("/health") as resp:
        return await resp.json()


async def metrics_text(client) -> str:
    async with client.get("/metrics") as resp:
        return await resp.text()


# --------------------------------------------------------------------------- stalled readers


async def test_a_client_that_stops_reading_is_cut_and_its_lease_released(make_client, caplog):
    models = models_yaml(llm_options={"repeat": 200_000, "reply": "word"},
                         stream_write_timeout_s=0.3)
    client = await make_client(models)
    server = client.server
    body = json.dumps({"model": MODEL, "stream": True,
                       "messages": [{"role": "user", "content": "a long story"}]}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
            f"Authorization: {AUTH['Authorization']}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills at once; never read
    sock.setblocking(False)
    try:
        with caplog.at_level(logging.WARNING, logger="llmux.chat"):
            await loop.sock_connect(sock, (server.host, server.port))
            await loop.sock_sendall(sock, head + body)

            async def cut() -> bool:
                snap = await health(client)
                rec = echo.record("qwen3.5-4b")
                return (bool(snap["loaded"]) and snap["loaded"][0]["in_flight"] == 0
                        and rec.requests == 1 and rec.active == 0)

            await until(cut, timeout=60)
        assert "stream_write_timeout_s" in caplog.text
        assert echo.record("qwen3.5-4b").cancelled == 1  # generation stopped early
        assert 'llmux_stalled_streams_total{model="qwen3.5-4b-instruct"} 1.0' in (
            await metrics_text(client))
        # Nothing holds the model any more: it unloads, and another model loads.
        async with client.post("/v1/admin/models/qwen3.5-4b/unload", headers=ADMIN) as resp:
            assert resp.status == 200 and (await resp.json())["unloaded"] is True
        async with client.post("/v1/admin/models/gpt-oss-20b/load", headers=ADMIN) as resp:
            assert resp.status == 200
        assert [m["model"] for m in (await health(client))["loaded"]] == ["gpt-oss-20b"]
    finally:
        sock.close()


async def test_a_reading_client_is_not_cut(make_client):
    client = await make_client(models_yaml(llm_options={"repeat": 20, "token_delay": 0.01},
                                           stream_write_timeout_s=0.3))
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with client.post("/v1/chat/completions", json=body, headers=AUTH) as resp:
        text = await resp.text()
    assert resp.status == 200 and text.rstrip().endswith("data: [DONE]")


# --------------------------------------------------------------------------- runtime errors


def _error_id(message: str) -> str:
    match = re.fullmatch(r"internal error \(id ([0-9a-f]+)\)", message)
    assert match, message
    return match.group(1)


async def test_a_runtime_error_mid_stream_sends_an_id_not_the_detail(make_client, caplog):
    client = await make_client(models_yaml(llm_options={"fail_after": 3, "repeat": 10}))
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi you"}]}
    with caplog.at_level(logging.ERROR):
        async with client.post("/v1/chat/completions", json=body, headers=AUTH) as resp:
            assert resp.status == 200
            text = await resp.text()
    events = [json.loads(line[6:]) for line in text.splitlines()
              if line.startswith("data: {")]
    assert sum("choices" in e and e["choices"] and e["choices"][0]["delta"].get("content")
               is not None for e in events) >= 1  # tokens came before the error
    error = events[-1]["error"]
    assert error["type"] == "server_error" and error["code"] == "internal_error"
    error_id = _error_id(error["message"])
    assert "secret" not in text and "RuntimeError" not in text
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged and echo.FAILURE_DETAIL in logged[0].getMessage()
    assert 'llmux_internal_errors_total{model="qwen3.5-4b-instruct"} 1.0' in (
        await metrics_text(client))


async def test_a_runtime_error_before_any_output_is_a_generic_500(make_client, caplog):
    client = await make_client(models_yaml(llm_options={"fail_after": 0}))
    for stream in (False, True):  # streaming too: no headers were sent yet
        body = {"model": MODEL, "stream": stream,
                "messages": [{"role": "user", "content": "one two three"}]}
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            async with client.post("/v1/chat/completions", json=body, headers=AUTH) as resp:
                text = await resp.text()
        assert resp.status == 500
        error = json.loads(text)["error"]
        assert error["type"] == "server_error" and error["code"] == "internal_error"
        error_id = _error_id(error["message"])
        assert "secret" not in text and "RuntimeError" not in text
        logged = [r for r in caplog.records if error_id in r.getMessage()]
        assert logged and echo.FAILURE_DETAIL in logged[0].getMessage()
    assert 'llmux_internal_errors_total{model="qwen3.5-4b-instruct"} 2.0' in (
        await metrics_text(client))
