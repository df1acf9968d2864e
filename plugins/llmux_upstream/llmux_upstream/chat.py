"""Chat through an upstream: the request body it gets, and its SSE stream as llmux events.

The upstream is always asked to stream (with usage), whatever the client asked: llmux's core
turns events into a streamed or a whole response, as it does for a local model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from llmux import (
    Cancellation,
    ChatRequest,
    ContentDelta,
    Finish,
    ReasoningDelta,
    ToolCallDelta,
    Usage,
)
from llmux.chatformats.messages import apply_prefix

from .client import Cancelled, Upstream
from .errors import broken, stream_error
from .options import Settings

log = logging.getLogger("llmux.upstream")

SAMPLING = ("temperature", "top_p", "max_tokens", "seed", "presence_penalty",
            "frequency_penalty")


def chat_body(s: Settings, request: ChatRequest) -> dict[str, Any]:
    """The client's request as the upstream gets it: its model name, the virtual model's
    behaviour applied, ``extra_body`` under it all."""
    behaviour = request.behaviour
    messages = apply_prefix([dict(m) for m in request.messages], behaviour.system_prompt_prefix)
    body: dict[str, Any] = dict(s.extra_body)
    body.update(model=s.model, messages=messages, stream=True,
                stream_options={"include_usage": True})
    if request.tools:  # OpenAI refuses a tool_choice without tools (the core drops "none"'s)
        body["tools"] = plain(request.tools)
        if request.tool_choice is not None:
            body["tool_choice"] = plain(request.tool_choice)
    response_format = openai_response_format(getattr(request, "response_format", None))
    if response_format is not None:
        body["response_format"] = response_format
    sp = request.sampling
    for name in SAMPLING:
        value = getattr(sp, name)
        if value is not None:
            body[name] = value
    if sp.stop:
        body["stop"] = list(sp.stop)
    if behaviour.reasoning_effort:
        body["reasoning_effort"] = behaviour.reasoning_effort
    if behaviour.thinking is not None:
        kwargs = dict(body.get("chat_template_kwargs") or {})
        kwargs["enable_thinking"] = behaviour.thinking
        body["chat_template_kwargs"] = kwargs
    return body


def openai_response_format(value: Any) -> dict | None:
    """The request's ``response_format`` as OpenAI's JSON: the core's ``ResponseFormat``
    (type, schema, name, strict), or the client's mapping as it came (an older core)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return plain(value)
    if value.type != "json_schema":
        return {"type": value.type}
    spec = {"name": value.name or "response", "schema": plain(value.schema or {"type": "object"}),
            "strict": bool(value.strict)}
    return {"type": "json_schema", "json_schema": spec}


def plain(value: Any) -> Any:
    """Mappings and sequences (frozen or not) as the dicts and lists JSON encodes."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def chat(up: Upstream, request: ChatRequest, cancel: Cancellation) -> Iterator:
    body = chat_body(up.settings, request)
    try:
        with up.exchange(cancel, "POST", "/chat/completions", json=body) as response:
            yield from events(response.iter_lines(), cancel, up.settings.shown_url)
    except Cancelled:
        yield Finish("cancelled")


def events(lines: Iterator[str], cancel: Cancellation, where: str) -> Iterator:
    """The upstream's SSE lines as llmux chat events. A stream that ends without ``[DONE]``
    or a finish reason was cut off: an error, not a short answer."""
    finish: str | None = None
    usage: Usage | None = None
    done = False
    for line in lines:
        if cancel.cancelled:
            yield Finish("cancelled")
            return
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            break
        try:
            chunk = json.loads(data)
        except ValueError:
            log.warning("upstream %s sent an unreadable chunk; skipped", where)
            continue
        if not isinstance(chunk, dict):
            continue
        if "error" in chunk:
            raise stream_error(where, chunk)
        u = chunk.get("usage")
        if u:
            details = u.get("prompt_tokens_details") or {}
            cached = details.get("cached_tokens") if isinstance(details, dict) else None
            usage = Usage(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0),
                          int(cached or 0))
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content")
            if reasoning is None:
                reasoning = delta.get("reasoning")
            if reasoning:
                yield ReasoningDelta(reasoning)
            if delta.get("content"):
                yield ContentDelta(delta["content"])
            for call in delta.get("tool_calls") or ():
                function = call.get("function") or {}
                yield ToolCallDelta(int(call.get("index", 0)), id=call.get("id"),
                                    name=function.get("name"),
                                    arguments=function.get("arguments") or "")
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    if cancel.cancelled:
        yield Finish("cancelled")
        return
    if not done and finish is None:
        raise broken(where, detail="the stream ended without a finish reason or [DONE]")
    yield Finish(finish or "stop")
    if usage is not None:
        yield usage
