"""Chat events -> OpenAI's wire format: SSE chunks for streams, one object otherwise.

The SSE encoder is on the per-token hot path: each chunk is a pre-built byte prefix and
suffix around one ``json.dumps`` of the delta's text, and a batch of events becomes one
write.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Iterable

from ..types import ContentDelta, Finish, ReasoningDelta, ToolCallDelta, Usage

_dumps = json.dumps
DONE = b"data: [DONE]\n\n"


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def usage_json(usage: Usage | None) -> dict | None:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


class SseEncoder:
    """Turns chat events into ``data: {chunk}\\n\\n`` frames, in OpenAI's order."""

    def __init__(self, model: str, *, include_usage: bool, cid: str | None = None):
        self.include_usage = include_usage
        self.finish: Finish | None = None
        self.usage: Usage | None = None
        self.tool_calls = 0
        head = {"id": cid or completion_id(), "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model, "system_fingerprint": None}
        self._head = _dumps(head)[:-1]  # without the closing brace
        open_ = f'data: {self._head},"choices":[{{"index":0,"delta":'
        self._content = (open_ + '{"content":').encode()
        self._reasoning = (open_ + '{"reasoning_content":').encode()
        self._tail = b'},"logprobs":null,"finish_reason":null}]}\n\n'

    def start(self) -> bytes:
        return self._frame({"role": "assistant", "content": ""})

    def _frame(self, delta: dict, finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return f'data: {self._head},"choices":[{_dumps(choice)}]}}\n\n'.encode()

    def encode(self, events: Iterable) -> bytes:
        out = []
        for event in events:
            kind = type(event)
            if kind is ContentDelta:
                if event.text:
                    out += (self._content, _dumps(event.text).encode(), self._tail)
            elif kind is ReasoningDelta:
                if event.text:
                    out += (self._reasoning, _dumps(event.text).encode(), self._tail)
            elif kind is ToolCallDelta:
                out.append(self._frame({"tool_calls": [tool_call_json(event)]}))
                self.tool_calls = max(self.tool_calls, event.index + 1)
            elif kind is Finish:
                self.finish = event
            elif kind is Usage:
                self.usage = event
        return b"".join(out)

    def end(self) -> bytes:
        reason = self.finish.reason if self.finish else "stop"
        out = [self._frame({}, reason)]
        if self.include_usage:
            out.append(
                f'data: {self._head},"choices":[],"usage":{_dumps(usage_json(self.usage))}}}\n\n'
                .encode()
            )
        out.append(DONE)
        return b"".join(out)

    def error(self, body: dict) -> bytes:
        return b"data: " + _dumps(body).encode() + b"\n\n"


def tool_call_json(delta: ToolCallDelta) -> dict:
    out: dict = {"index": delta.index}
    if delta.id is not None:
        out["id"] = delta.id
        out["type"] = "function"
    function: dict = {}
    if delta.name is not None:
        function["name"] = delta.name
    function["arguments"] = delta.arguments
    out["function"] = function
    return out


class Accumulator:
    """Collects a whole answer for a non-streaming response."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, dict] = {}
        self.finish: Finish | None = None
        self.usage: Usage | None = None

    def add(self, events: Iterable) -> None:
        for event in events:
            kind = type(event)
            if kind is ContentDelta:
                self.content.append(event.text)
            elif kind is ReasoningDelta:
                self.reasoning.append(event.text)
            elif kind is ToolCallDelta:
                call = self.calls.setdefault(
                    event.index,
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                if event.id is not None:
                    call["id"] = event.id
                if event.name is not None:
                    call["function"]["name"] = event.name
                call["function"]["arguments"] += event.arguments
            elif kind is Finish:
                self.finish = event
            elif kind is Usage:
                self.usage = event

    def response(self, model: str, cid: str | None = None) -> dict:
        message: dict = {"role": "assistant", "content": "".join(self.content)}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.calls:
            message["tool_calls"] = [self.calls[i] for i in sorted(self.calls)]
            if not message["content"]:
                message["content"] = None
        return {
            "id": cid or completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": None,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": self.finish.reason if self.finish else "stop",
            }],
            "usage": usage_json(self.usage),
        }
