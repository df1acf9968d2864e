"""A tiny real OpenAI-compatible server that misbehaves on purpose: the request's ``model``
names what it does. It records every request it gets (``Behaviour.requests``)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from aiohttp import web

#: model name -> the model type the llmux side declares for it
BEHAVIOURS = {
    "ok": "llm",  # a well-formed two-token answer
    "dies": "llm",  # two tokens, then the connection is dropped
    "cut": "llm",  # one token, then a clean end without a finish reason or [DONE]
    "error-event": "llm",  # one token, then an error event inside the stream
    "garbage": "llm",  # 200 with an HTML page
    "silent": "llm",  # never sends headers
    "mute": "llm",  # sends the SSE headers, then nothing
    "stall": "llm",  # the same, and records when llmux closes the connection
    "status-500": "llm", "status-429": "llm", "status-413": "llm", "status-422": "llm",
    "status-404": "llm", "status-401": "llm",
    "not-audio": "tts",  # 200 with bytes that are not audio
    "bad-json": "asr",  # 200 with a transcription that is not JSON
}
SSE = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


@dataclass
class Behaviour:
    base_url: str = ""
    requests: list = field(default_factory=list)  # (path, headers, body) as received
    release: asyncio.Event = field(default_factory=asyncio.Event)  # ends the silent ones
    stalled: asyncio.Event = field(default_factory=asyncio.Event)  # stall: headers sent
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # stall: the peer left


def chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": content} if content is not None else {}
    body = {"id": "x", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def create_app(b: Behaviour) -> web.Application:
    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": name, "object": "model"} for name in BEHAVIOURS]})

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        b.requests.append((request.path, dict(request.headers), body))
        return await answer(request, body["model"])

    async def speech(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        b.requests.append((request.path, dict(request.headers), body))
        if body["model"] == "not-audio":
            return web.Response(body=b"this is not audio", content_type="audio/wav")
        return await answer(request, body["model"])

    async def transcriptions(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        b.requests.append((request.path, dict(request.headers), dict(form)))
        if form["model"] == "bad-json":
            return web.Response(text="<html>oops</html>", content_type="text/html")
        return await answer(request, form["model"])

    async def answer(request: web.Request, model: str) -> web.StreamResponse:
        if model.startswith("status-"):
            status = int(model.split("-")[1])
            error = {"error": {"message": f"upstream says {status}", "type": "x", "code": None}}
            headers = {"Retry-After": "7"} if status == 500 else {}
            return web.json_response(error, status=status, headers=headers)
        if model == "garbage":
            return web.Response(text="<html>Bad gateway</html>", content_type="text/html")
        if model == "silent":
            await b.release.wait()
            return web.json_response({})
        response = web.StreamResponse(headers=SSE)
        await response.prepare(request)
        if model in ("mute", "stall"):
            if model == "stall":
                b.stalled.set()
                try:  # until llmux closes the connection (aiohttp may cancel the handler)
                    while not (request.transport is None or request.transport.is_closing()):
                        if b.release.is_set():
                            return response
                        await asyncio.sleep(0.02)
                finally:
                    if not b.release.is_set():
                        b.closed.set()
            else:
                await b.release.wait()
            return response
        await response.write(chunk("one "))
        if model == "ok":
            await response.write(chunk("two", "stop") + b"data: [DONE]\n\n")
        elif model == "dies":
            await response.write(chunk("two "))
            request.transport.abort()  # the upstream is gone mid-stream
            return response
        elif model == "error-event":
            error = {"error": {"message": "the GPU fell over", "type": "server_error",
                               "param": None, "code": "internal_error"}}
            await response.write(b"data: " + json.dumps(error).encode() + b"\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/audio/speech", speech)
    app.router.add_post("/v1/audio/transcriptions", transcriptions)
    return app
