"""The reference for the gateway section: a bare aiohttp handler that reads and parses the
request like llmux does, then returns bytes captured from llmux — no auth, no scheduler, no
runtime, no encoder.

``?write=frame`` streams the captured SSE one frame per write (what a plain token-by-token
handler does); ``?write=all`` writes it at once (the transport's ceiling).

    python -m benchmarks.bare_server PORT JSON_FILE SSE_FILE
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aiohttp import web

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
               "Connection": "keep-alive", "X-Accel-Buffering": "no"}


def make_app(json_body: bytes, sse_body: bytes) -> web.Application:
    frames = [f + b"\n\n" for f in sse_body.split(b"\n\n") if f]

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def chat(request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        if not body.get("stream"):
            return web.Response(body=json_body, content_type="application/json")
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(request)
        if request.query.get("write") == "all":
            await response.write(sse_body)
        else:
            for frame in frames:
                await response.write(frame)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def main(argv: list[str]) -> None:
    port, json_file, sse_file = int(argv[0]), Path(argv[1]), Path(argv[2])
    app = make_app(json_file.read_bytes(), sse_file.read_bytes())
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main(sys.argv[1:])
