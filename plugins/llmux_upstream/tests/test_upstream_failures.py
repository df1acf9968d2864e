"""An upstream that fails: every failure is an OpenAI error with the status of the table in
llmux_upstream/errors.py (and docs/scale-out.md), never a hang. The failures come from real
servers: the misbehaving aiohttp server of misbehaving.py, and a second ``llmux serve`` that
is killed mid-stream."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import openai
import pytest
from upstream_fixtures import AUTH, DEMO_DIR, REPO, llmux_app, openai_client

from llmux.testing import serve_process


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


async def post(client, model: str, stream: bool = False, text: str = "hi"):
    return await client.post("/v1/chat/completions", headers=AUTH,
                             json={"model": model, "messages": user(text), "stream": stream})


async def error_of(response, status: int) -> dict:
    assert response.status == status, await response.text()
    body = await response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


async def streamed_error(client, model: str) -> tuple[str, openai.APIError]:
    """Stream ``model`` with the official client: the content before the error, the error."""
    api = openai_client(client)
    stream = await api.chat.completions.create(model=model, messages=user("hi"), stream=True)
    content = ""
    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                content += chunk.choices[0].delta.content
    await api.close()
    return content, caught.value


@pytest.mark.parametrize("model, detail", [
    ("bad-dies", "the connection closed before the answer ended"),
    ("bad-cut", "the stream ended without a finish reason or [DONE]"),
    ("bad-error-event", "the GPU fell over"),
])
async def test_an_answer_that_breaks_off_is_a_502_or_an_error_event(bad_client, model, detail):
    response = await post(bad_client, model)
    error = await error_of(response, 502)
    assert error["type"] == "server_error" and error["code"] == "upstream_error"
    assert detail in error["message"] and "failed mid-answer" in error["message"]
    assert response.headers["Retry-After"] == "5"
    # streamed: the tokens that came, then OpenAI's error event (the status was sent: 200)
    content, exc = await streamed_error(bad_client, model)
    assert content == ("one two " if model == "bad-dies" else "one ")
    assert exc.code == "upstream_error" and detail in exc.message


async def test_a_page_that_is_not_a_stream_is_a_502(bad_client):
    for stream in (False, True):
        error = await error_of(await post(bad_client, "bad-garbage", stream), 502)
        assert "ended without a finish reason" in error["message"]


@pytest.mark.parametrize("model", ["bad-silent", "bad-mute"])
async def test_an_upstream_that_never_answers_is_a_503(bad_client, model):
    """No headers at all, or the headers and then nothing: the first-byte (read) timeout."""
    for stream in (False, True):
        response = await post(bad_client, model, stream)
        error = await error_of(response, 503)
        assert error["code"] == "upstream_unavailable"
        assert "no answer within first_byte_timeout_s" in error["message"]
        assert response.headers["Retry-After"] == "5"


@pytest.mark.parametrize("model, status, type_, code, retry_after", [
    ("bad-status-500", 503, "server_error", "upstream_unavailable", "7"),
    ("bad-status-429", 503, "server_error", "upstream_unavailable", "5"),
    ("bad-status-413", 413, "invalid_request_error", "payload_too_large", None),
    ("bad-status-422", 400, "invalid_request_error", "bad_request", None),
    ("bad-status-404", 503, "server_error", "upstream_misconfigured", "5"),
    ("bad-status-401", 503, "server_error", "upstream_misconfigured", "5"),
])
async def test_upstream_statuses_map_to_openai_errors(bad_client, model, status, type_, code,
                                                      retry_after):
    upstream_status = model.rsplit("-", 1)[1]
    for stream in (False, True):
        response = await post(bad_client, model, stream)
        error = await error_of(response, status)
        assert (error["type"], error["code"]) == (type_, code)
        assert f"upstream says {upstream_status}" in error["message"]
        assert response.headers.get("Retry-After") == retry_after


async def test_a_wrong_upstream_key_fails_the_load_with_the_upstreams_401(client):
    error = await error_of(await post(client, "wrong-key"), 503)
    assert error["code"] == "model_load_failed" and "answered 401" in error["message"]


async def test_broken_audio_answers_are_502(bad_client):
    import aiohttp

    from llmux.testing import sine_wav

    response = await bad_client.post("/v1/audio/speech", headers=AUTH,
                                     json={"model": "bad-not-audio", "input": "hello"})
    error = await error_of(response, 502)
    assert "its speech is not audio" in error["message"]
    form = aiohttp.FormData({"model": "bad-bad-json"})
    form.add_field("file", sine_wav(0.5), filename="a.wav", content_type="audio/wav")
    response = await bad_client.post("/v1/audio/transcriptions", headers=AUTH, data=form)
    error = await error_of(response, 502)
    assert "its transcription is not OpenAI's JSON" in error["message"]


async def test_a_client_that_leaves_closes_a_stalled_upstream_request(upstream, misbehaving,
                                                                     tmp_path, keys):
    """The upstream sent its headers and then nothing (its read timeout here is 300 s): the
    client leaving shuts the upstream connection at once, which a real engine reads as the
    request's abort."""
    import aiohttp

    from llmux.testing import serve

    async with serve(llmux_app(upstream, tmp_path, misbehaving.base_url)) as url:
        async with aiohttp.ClientSession() as session:
            for stream in (True, False):
                misbehaving.stalled.clear()
                misbehaving.closed.clear()
                body = {"model": "bad-stall", "messages": user("hi"), "stream": stream}
                request = asyncio.ensure_future(
                    session.post(url + "/v1/chat/completions", json=body, headers=AUTH))
                await misbehaving.stalled.wait()
                request.cancel()  # the client goes away
                with pytest.raises(asyncio.CancelledError):
                    await request
                await misbehaving.closed.wait()  # the pytest timeout catches a hang


@pytest.fixture
def doomed_upstream(tmp_path):
    """A second real upstream (the demo), to be killed by the test."""
    env = dict(os.environ, LLMUX_LOAD_PLUGINS="")
    with serve_process(DEMO_DIR, tmp_path / "doomed.log", env=env, cwd=REPO) as server:
        yield server


async def test_a_real_upstream_killed_mid_stream(doomed_upstream, tmp_path, aiohttp_client,
                                                 keys):
    client = await aiohttp_client(llmux_app(doomed_upstream.url + "/v1", tmp_path))
    text = " ".join(f"w{i}" for i in range(5000))  # 50 s at the demo's 0.01 s a token
    response = await post(client, "chat", stream=True, text=text)
    assert response.status == 200
    events = []
    async for raw in response.content:
        line = raw.decode().strip()
        if not line.startswith("data:"):
            continue
        events.append(line[5:].strip())
        if len(events) == 3:
            os.kill(doomed_upstream.proc.pid, signal.SIGKILL)
    assert events[-1] != "[DONE]"
    error = json.loads(events[-1])["error"]
    assert error["code"] == "upstream_error"
    assert "the connection closed before the answer ended" in error["message"]
    assert all("choices" in json.loads(e) for e in events[:-1])
