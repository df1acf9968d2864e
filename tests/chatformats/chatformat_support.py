"""Helpers for the chat-format tests: run parsers, merge events, render test templates.

The templates in ``templates/`` stand in for the real Qwen3.5 and gpt-oss chat templates
(see shared/notes/chat-formats.md); runtime plugin tests may render them too, with
:func:`render` (the same Jinja set-up as transformers' ``apply_chat_template``).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from llmux.chatformats import get_format
from llmux.types import ContentDelta, Finish, ReasoningDelta, ToolCallDelta

TEMPLATES = Path(__file__).parent / "templates"
CALL_ID = re.compile(r"call_[0-9a-f]{24}\Z")
TODAY = datetime(2026, 11, 20, 9, 30)


def R(text: str) -> ReasoningDelta:
    return ReasoningDelta(text)


def C(text: str) -> ContentDelta:
    return ContentDelta(text)


def call(index: int, name: str, arguments: str) -> ToolCallDelta:
    return ToolCallDelta(index, "call_*", name, arguments)


def merge(events: Iterable[Any]) -> list[Any]:
    """Adjacent deltas of one kind (and of one call) merged; call ids checked and masked."""
    out: list[Any] = []
    for e in events:
        if isinstance(e, ToolCallDelta) and e.id is not None:
            assert CALL_ID.match(e.id), e.id
            e = ToolCallDelta(e.index, "call_*", e.name, e.arguments)
        if out and type(out[-1]) is type(e):
            last = out[-1]
            if isinstance(e, (ContentDelta, ReasoningDelta)):
                out[-1] = type(e)(last.text + e.text)
                continue
            if isinstance(e, ToolCallDelta) and e.index == last.index and e.id is None:
                args = last.arguments + e.arguments
                out[-1] = ToolCallDelta(last.index, last.id, last.name, args)
                continue
        out.append(e)
    return out


def check_stream(events: list[Any]) -> None:
    """What every stream must look like, however it was chunked."""
    assert events and isinstance(events[-1], Finish)
    assert not any(isinstance(e, Finish) for e in events[:-1])
    seen: set[int] = set()
    for e in events:
        if isinstance(e, (ContentDelta, ReasoningDelta)):
            assert e.text, "empty delta"
        if isinstance(e, ToolCallDelta):
            if e.index not in seen:
                assert e.id and e.name and e.index == len(seen), e
                seen.add(e.index)
            else:
                assert e.id is None and e.name is None and e.arguments, e


def parse(fmt: str, chunks: str | Iterable[str], *, tools: Any = None, thinking: bool = True,
          reason: str = "stop") -> list[Any]:
    """Raw events of one generation fed in ``chunks`` (a str is fed whole)."""
    parser = get_format(fmt).parser(tools, thinking=thinking)
    events: list[Any] = []
    for chunk in [chunks] if isinstance(chunks, str) else chunks:
        events += parser.feed(chunk)
    events += parser.close(reason)
    check_stream(events)
    return events


def calls_of(events: Iterable[Any]) -> dict[int, dict[str, Any]]:
    """``{index: {"name", "arguments"}}`` with the arguments concatenated."""
    calls: dict[int, dict[str, Any]] = {}
    for e in events:
        if isinstance(e, ToolCallDelta):
            c = calls.setdefault(e.index, {"id": e.id, "name": e.name, "arguments": ""})
            c["arguments"] += e.arguments
    return calls


def to_message(events: Iterable[Any]) -> dict[str, Any]:
    """The assistant message an OpenAI client builds from the events."""
    events = list(events)
    content = "".join(e.text for e in events if isinstance(e, ContentDelta))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if reasoning:
        message["reasoning_content"] = reasoning
    calls = calls_of(events)
    if calls:
        message["tool_calls"] = [
            {"id": c["id"], "type": "function",
             "function": {"name": c["name"], "arguments": c["arguments"]}}
            for _, c in sorted(calls.items())
        ]
    return message


def render(template: str, messages: list[dict[str, Any]], *, tools: Any = None,
           add_generation_prompt: bool = True, **kwargs: Any) -> str:
    """Render ``templates/<template>.jinja`` as transformers' apply_chat_template does."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
               sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = TODAY.strftime  # a fixed "now"
    source = (TEMPLATES / f"{template}.jinja").read_text()
    return env.from_string(source).render(
        messages=messages, tools=tools, add_generation_prompt=add_generation_prompt, **kwargs
    )
