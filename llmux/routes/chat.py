"""POST /v1/chat/completions: non-streaming JSON and SSE streaming.

A stream whose client stops reading is ended after ``server.stream_write_timeout_s`` (its
lease goes with it); an unexpected runtime error reaches the client as a generic message with
an error id, its detail only the log (see :func:`llmux.middlewares.internal_error`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from aiohttp import web

from ..appstate import CHAT_FORMATS, CONFIG, MANAGER, METRICS
from ..bridge import EventBridge
from ..errors import LlmuxError
from ..middlewares import MODEL, internal_error
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
    received = time.perf_counter()
    app = request.app
    body = await read_json(request, app[CONFIG].server.chat_body_limit_mb)
    virtual = resolve_model(request, body.get("model") if isinstance(body, dict) else None, "llm")
    request[MODEL] = virtual.name
    chat = parse_chat_request(body, virtual)
    usage_wanted = include_usage(body)
    physical = virtual.physical
    formats = app[CHAT_FORMATS]
    if formats is not None and physical.chat_format:
        chat = dataclasses.replace(chat, chat_format=formats.get(physical.chat_format))

    started = time.perf_counter()
    stamps = [("parse", started)]
    manager = app[MANAGER]
    lease = await manager.acquire(physical.name)
    bridge = None
    try:
        stamps.append(("admission", time.perf_counter()))
        cancel = Cancellation()

        def generate():
            return lease.backend.infer(lease.model, lease.handle, chat, cancel)

        bridge = EventBridge(generate, cancel, lease.executor, whole=not chat.stream)
        if not chat.stream:
            return await _complete(request, bridge, chat, (received, stamps))
        return await _stream(request, bridge, chat, usage_wanted, (received, stamps))
    finally:
        if bridge is not None and bridge.answered and not bridge.future.done():
            _finish_later(bridge, lease)  # the client has its whole answer
        else:
            try:
                if bridge is not None:
                    await bridge.aclose()
            finally:
                lease.release()


#: The runtimes' work after their answers (see llmux.bridge), each holding its lease.
_tails: set[asyncio.Task] = set()


def _finish_later(bridge: EventBridge, lease) -> None:
    """Let the handler return (its connection free for the client's next request) while the
    runtime finishes after its answer; the model stays leased until then."""

    async def finish() -> None:
        try:
            await bridge.aclose()
        finally:
            lease.release()

    task = asyncio.create_task(finish())
    _tails.add(task)
    task.add_done_callback(_tails.discard)


async def _complete(request, bridge: EventBridge, chat: ChatRequest,
                    timing: tuple) -> web.Response:
    """The whole answer in one hand-over from the worker thread; sent as soon as it is
    complete (the runtime may still be finishing its own work, under the caller's lease)."""
    acc = Accumulator()
    async for batch in bridge:
        acc.add(batch)
    metrics = request.app[METRICS]
    received, stamps = timing
    if bridge.first_at is not None:
        metrics.observe_ttft(chat.model, bridge.first_at - stamps[0][1])
        metrics.observe_phases(chat.model, [*stamps, ("runtime", bridge.first_at)], received)
    if acc.usage:
        metrics.add_tokens(chat.model, acc.usage.completion_tokens)
        metrics.add_prompt(chat.model, acc.usage)
    response = web.json_response(acc.response(chat.model))
    await response.prepare(request)
    await response.write_eof()
    return response


class StalledReader(Exception):
    """The client did not take a write within server.stream_write_timeout_s."""


async def _stream(request, bridge: EventBridge, chat: ChatRequest, usage_wanted: bool,
                  timing: tuple) -> web.StreamResponse:
    metrics = request.app[METRICS]
    encoder = SseEncoder(chat.model, include_usage=usage_wanted, cid=completion_id())
    timeout = request.app[CONFIG].server.stream_write_timeout_s
    response = web.StreamResponse(headers=SSE_HEADERS)

    async def write(data: bytes) -> None:
        # aiohttp waits for the socket to drain once its buffer is full: a client that has
        # stopped reading would hold this request, its worker and its lease forever.
        # (asyncio.timeout, not wait_for: no task per write on the hot path.)
        try:
            async with asyncio.timeout(timeout):
                await response.write(data)
        except TimeoutError:
            raise StalledReader from None

    batches = bridge.__aiter__()
    # Wait for the first events before sending headers: an error the runtime raises at
    # once (a corrupt image, an unsupported option) still becomes a proper 4xx response.
    try:
        first = await batches.__anext__()
    except StopAsyncIteration:
        first = []
    received, stamps = timing
    stamps.append(("runtime", time.perf_counter()))
    metrics.observe_ttft(chat.model, stamps[-1][1] - stamps[0][1])
    await response.prepare(request)
    try:
        try:
            await write(encoder.start() + encoder.encode(first))
            stamps.append(("first_write", time.perf_counter()))
            metrics.observe_phases(chat.model, stamps, received)
            async for batch in batches:
                data = encoder.encode(batch)
                if data:
                    await write(data)
        except LlmuxError as exc:
            log.warning("stream for %s failed: %s", chat.model, exc.message)
            await write(encoder.error(exc.to_json()))
            return response
        except (StalledReader, ConnectionResetError, ConnectionError):
            raise
        except Exception as exc:
            message = internal_error(request, exc, chat.model, "stream")
            error = LlmuxError(message, code="internal_error")
            await write(encoder.error(error.to_json()))
            return response
        if encoder.usage:
            metrics.add_tokens(chat.model, encoder.usage.completion_tokens)
            metrics.add_prompt(chat.model, encoder.usage)
        await write(encoder.end())
    except StalledReader:
        log.warning("the client of a %s stream took nothing for %g s (server."
                    "stream_write_timeout_s); stream ended, generation stopped", chat.model,
                    timeout)
        metrics.stream_stalled(chat.model)
        if request.transport is not None:
            request.transport.abort()  # its unread data is dropped with it
        return response
    except (ConnectionResetError, ConnectionError):
        log.info("client left the %s stream; generation stopped", chat.model)
        raise
    await response.write_eof()
    return response
