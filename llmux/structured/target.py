"""What a constrained answer may be: a JSON answer, calls of some tools, or either.

:func:`target_for` reads a validated :class:`llmux.types.ChatRequest`; a chat format turns the
target into its own syntax (:meth:`llmux.chatformats.ChatFormat.grammar`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from .schema import json_lark


@dataclass(frozen=True)
class Call:
    """A function the answer may call, with its arguments' JSON Schema."""

    name: str
    parameters: Mapping[str, Any]
    strict: bool = True

    def arguments_lark(self) -> str:
        """The Lark expression for the arguments as one JSON object."""
        return json_lark(self.parameters, strict=self.strict)


@dataclass(frozen=True)
class Target:
    """``answer``: the Lark expression the content must match (None: no content answer);
    ``calls``: the functions the answer may call instead (or must, when ``answer`` is None);
    ``parallel``: whether several calls may follow each other."""

    answer: str | None
    calls: tuple[Call, ...] = ()
    parallel: bool = True

    @property
    def must_call(self) -> bool:
        return self.answer is None


MAX_PARALLEL = 8  # calls in one answer when parallel calls are allowed


def target_for(request: Any) -> Target | None:
    """The target of ``request`` (a ChatRequest), or None when nothing is constrained."""
    choice, tools = request.tool_choice, request.tools or ()
    parallel = getattr(request, "parallel_tool_calls", True)
    if tools and choice == "required":
        return Target(None, tuple(call_of(t) for t in tools), parallel=parallel)
    if tools and isinstance(choice, Mapping):
        name = choice["function"]["name"]
        return Target(None, tuple(call_of(t) for t in tools if t["function"]["name"] == name),
                      parallel=False)
    fmt = request.response_format
    if fmt is None:
        return None
    answer = json_lark(fmt.schema if fmt.type == "json_schema" else None, strict=fmt.strict)
    return Target(answer, tuple(call_of(t) for t in tools) if choice != "none" else (),
                  parallel=parallel)


def call_of(tool: Mapping[str, Any]) -> Call:
    """A tool definition as a :class:`Call`. Its schema is enforced strictly only when the
    function says ``strict: true`` (OpenAI's default is not strict): other keywords the
    engine cannot enforce are ignored and logged."""
    fn = tool["function"]
    params = fn.get("parameters")
    if not isinstance(params, Mapping) or not params:
        params = {"type": "object", "properties": {}, "additionalProperties": False}
    return Call(fn["name"], params, strict=fn.get("strict") is True)


def lark_literal(text: str) -> str:
    """A Lark string literal matching ``text`` exactly."""
    return json.dumps(text, ensure_ascii=False)


def lark_tag(text: str, specials: frozenset[str]) -> str:
    """``text`` as the special token it is in this vocabulary, else as plain text."""
    return text if text in specials else lark_literal(text)


def lark_regex(pattern: str) -> str:
    return "/" + pattern.replace("/", "\\/") + "/"
