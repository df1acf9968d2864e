"""The upstream key travels in the Authorization header to the upstream, and nowhere else:
not in any log record (every logger at DEBUG, httpx's and httpcore's included), not in any
response, across successful requests, load failures and errors of every kind."""

from __future__ import annotations

import logging

import aiohttp
from upstream_fixtures import AUTH, UPSTREAM_KEY, WRONG_KEY

from llmux.testing import sine_wav


async def test_the_key_reaches_the_upstream_and_no_log(bad_client, misbehaving, caplog):
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []

    async def call(method: str, path: str, **kwargs) -> int:
        async with bad_client.request(method, path, headers=AUTH, **kwargs) as response:
            answers.append(str(response.headers) + (await response.read()).decode("latin-1"))
            return response.status

    def chat(model: str, stream: bool = False) -> dict:
        return {"json": {"model": model, "stream": stream,
                         "messages": [{"role": "user", "content": "hi"}]}}

    assert await call("POST", "/v1/chat/completions", **chat("chat")) == 200
    assert await call("POST", "/v1/chat/completions", **chat("chat", True)) == 200
    assert await call("POST", "/v1/chat/completions", **chat("bad-ok", True)) == 200
    form = aiohttp.FormData({"model": "transcribe"})
    form.add_field("file", sine_wav(0.5), filename="a.wav", content_type="audio/wav")
    assert await call("POST", "/v1/audio/transcriptions", data=form) == 200
    assert await call("POST", "/v1/audio/speech",
                      json={"model": "speak", "input": "hi", "voice": "v"}) == 200
    statuses = [await call("POST", "/v1/chat/completions", **chat(model, stream))
                for model in ("missing", "closed", "wrong-key", "bad-dies", "bad-mute",
                              "bad-status-401", "bad-status-500", "bad-error-event")
                for stream in (False, True)]
    assert statuses.count(200) == 2  # bad-dies and bad-error-event streamed: error events
    assert await call("POST", "/v1/audio/speech",
                      json={"model": "bad-not-audio", "input": "hi"}) == 502

    # the key went where it belongs
    _, headers, _ = misbehaving.requests[0]
    assert headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    # and nowhere else
    assert caplog.records and any(r.name.startswith("httpx") for r in caplog.records)
    for record in caplog.records:
        text = record.getMessage() + str(record.args) + str(record.exc_info)
        assert UPSTREAM_KEY not in text and WRONG_KEY not in text, record.name
    assert UPSTREAM_KEY not in caplog.text and WRONG_KEY not in caplog.text
    for answer in answers:
        assert UPSTREAM_KEY not in answer and WRONG_KEY not in answer
