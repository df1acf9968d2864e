"""POST /v1/chat/completions: non-streaming JSON and SSE streaming."""

from __future__ import annotations

import dataclasses
import logging
import time

from aiohttp import web

from ..appstate import CHAT_FORMATS, CONFIG, EXECUTOR, MANAGER, METRICS
from ..bridge import EventBridge, run_to_completion
from ..errors import LlmuxError
from ..openai.chat import include_usage, parse_chat_request
from ..openai.completions import Accumulator, SseEncoder, completion_id
from ..types import Cancellation, ChatRequest
from .common import read_json, resolve_model

log = logging.getLogger("llmux.chat")
routes = web.RouteTableDef()

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}


@routes.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    app = request.app
    body = await read_json(request, app[CONFIG].server.chat_body_limit_mb)
    virtual = resolve_model(request, body.get("model") if isinstance(body, dict) else None, "llm")
    chat = parse_chat_request(body, virtual)
    usage_wanted = include_usage(body)
    physical = virtual.physical
    formats = app[CHAT_FORMATS]
    if formats is not None and physical.chat_format:
        chat = dataclasses.replace(chat, chat_format=formats.get(physical.chat_format))

    started = time.perf_counter()
    async with app[MANAGER].lease(physical.name) as lease:
        cancel = Cancellation()

        def generate():
            return lease.backend.infer(lease.model, lease.handle, chat, cancel)

        if not chat.stream:
            return await _complete(request, generate, cancel, chat, started)
        bridge = EventBridge(generate, cancel, app[EXECUTOR])
        try:
            return await _stream(request, bridge, chat, usage_wanted, started)
        finally:
            await bridge.aclose()


async def _complete(request, generate, cancel: Cancellation, chat: ChatRequest,
                    started: float) -> web.Response:
    """The whole answer in one trip to a worker thread and back."""

    def collect() -> tuple[Accumulator, float | None]:
        acc, first = Accumulator(), None
        for event in generate():
            if first is None:
                first = time.perf_counter()
            acc.add((event,))
            if cancel.cancelled:
                break
        return acc, first

    acc, first = await run_to_completion(request.app[EXECUTOR], collect, cancel)
    metrics = request.app[METRICS]
    if first is not None:
        metrics.observe_ttft(chat.model, first - started)
    if acc.usage:
        metrics.add_tokens(chat.model, acc.usage.completion_tokens)
    return web.json_response(acc.response(chat.model))


async def _stream(request, bridge: EventBridge, chat: ChatRequest, usage_wanted: bool,
                  started: float) -> web.StreamResponse:
    metrics = request.app[METRICS]
    encoder = SseEncoder(chat.model, include_usage=usage_wanted, cid=completion_id())
    batches = bridge.__aiter__()
    # Wait for the first events before sending headers: an error the runtime raises at
    # once (a corrupt image, an unsupported option) still becomes a proper 4xx response.
    try:
        first = await batches.__anext__()
    except StopAsyncIteration:
        first = []
    metrics.observe_ttft(chat.model, time.perf_counter() - started)
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    await response.write(encoder.start() + encoder.encode(first))
    try:
        async for batch in batches:
            data = encoder.encode(batch)
            if data:
                await response.write(data)
    except LlmuxError as exc:
        log.warning("stream for %s failed: %s", chat.model, exc.message)
        await response.write(encoder.error(exc.to_json()))
        return response
    except (ConnectionResetError, ConnectionError):
        log.info("client left the %s stream; generation stopped", chat.model)
        raise
    except Exception as exc:
        log.exception("stream for %s failed", chat.model)
        await response.write(encoder.error(LlmuxError(f"generation failed: {exc}").to_json()))
        return response
    if encoder.usage:
        metrics.add_tokens(chat.model, encoder.usage.completion_tokens)
    await response.write(encoder.end())
    await response.write_eof()
    return response
