"""gpt-oss: OpenAI's harmony format.

The generation prompt ends in ``<|start|>assistant``, so the output is a run of messages
whose first header may lack ``<|start|>assistant``::

    <|channel|>analysis<|message|>…<|end|>
    <|start|>assistant<|channel|>final<|message|>…<|return|>
    <|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{…}<|call|>

``analysis`` -> reasoning; ``final`` and ``commentary`` without a recipient (preambles) ->
content; a recipient ``functions.NAME`` (in the role or the channel part of the header) ->
a tool call. ``<|return|>`` and ``<|call|>`` are stop tokens; ``<|end|>`` is not.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Sequence

from ..types import Behaviour, ContentDelta, ReasoningDelta, ToolCallDelta
from .base import ChatFormat, StreamParser, TagScanner, Tools
from .messages import apply_prefix, copy_messages, merge_leading_system, pop_reasoning, text_of
from .params import tool_properties

EFFORTS = ("low", "medium", "high")


class GptOssFormat(ChatFormat):
    name = "gpt_oss"
    stop_sequences = ("<|return|>", "<|call|>")
    needs_special_tokens = True

    def template_kwargs(self, behaviour: Behaviour) -> dict[str, Any]:
        # The template writes the one "Reasoning: …" line of the system block from this.
        effort = behaviour.reasoning_effort
        if effort is None:  # gpt-oss cannot stop reasoning: "no thinking" means low
            effort = "low" if behaviour.thinking is False else "medium"
        effort = str(effort).lower()
        if effort not in EFFORTS:
            raise ValueError(f"reasoning_effort {effort!r} is not one of {', '.join(EFFORTS)}")
        return {"reasoning_effort": effort}

    def prepare_messages(
        self, messages: Sequence[Mapping[str, Any]], behaviour: Behaviour
    ) -> list[dict[str, Any]]:
        out = copy_messages(messages)
        for m in out:
            if m.get("role") == "assistant":
                thinking = pop_reasoning(m)  # the template reads `thinking`
                content = text_of(m.get("content"))
                m["content"] = "" if content is None else content
                if m.get("tool_calls") and thinking and m["content"]:
                    # The template refuses both on a call turn; it renders either as analysis.
                    thinking, m["content"] = f"{thinking}\n\n{m['content']}", ""
                if thinking:
                    m["thinking"] = thinking
            else:  # the template concatenates strings: gpt-oss reads text only
                content = text_of(m.get("content"))
                m["content"] = "" if content is None else content
        merge_leading_system(out, None)
        return apply_prefix(_one_call_per_message(out), behaviour.system_prompt_prefix)

    def parser(self, tools: Tools = None, *, thinking: bool = True) -> StreamParser:
        return HarmonyParser(tools)

    grammar_tags = ("<|channel|>", "<|message|>", "<|end|>", "<|start|>", "<|constrain|>")

    def grammar(self, target: Any, *, thinking: bool = True,
                specials: frozenset[str] = frozenset()) -> str:
        from .harmony_grammar import grammar

        return grammar(target, thinking=thinking, specials=specials)


def _one_call_per_message(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The template renders only the first call of a message and names each tool result
    after the latest call: give every call its own message, followed by its result."""
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(messages):
        m = messages[i]
        i += 1
        calls = m.get("tool_calls") if m.get("role") == "assistant" else None
        if not calls or len(calls) < 2:
            out.append(m)
            continue
        results = []
        while i < len(messages) and messages[i].get("role") == "tool":
            results.append(messages[i])
            i += 1
        for n, call in enumerate(calls):
            part = dict(m) if n == 0 else {"role": "assistant", "content": ""}
            part["tool_calls"] = [call]
            out.append(part)
            for r in [r for r in results if r.get("tool_call_id") == call.get("id")]:
                out.append(r)
                results.remove(r)
        out.extend(results)  # results matching no call keep their order, at the end
    return out


HEADER, BODY, DONE = range(3)
_MESSAGE = "<|message|>"
_HEADER_MAX = 512
_HEADER_STARTS = ("assistant", "<|channel|>", "<|constrain|>", "to=")
_RECIPIENT = re.compile(r"\bto=([^\s<]+)")
_CALL = object()  # the kind of a message addressed to a function


class HarmonyParser(StreamParser):
    stop_sequences = GptOssFormat.stop_sequences

    def __init__(self, tools: Tools = None) -> None:
        super().__init__()
        self._names = set(tool_properties(tools))
        self._tools_on = bool(tools)
        self._body_tags = TagScanner(
            "<|end|>", "<|return|>", "<|call|>", "<|endoftext|>", "<|start|>", "<|channel|>"
        )
        self._state = HEADER
        self._kind: Any = None
        self._name = ""
        self._index = -1
        self._args: list[str] = []

    def _run(self, *, final: bool) -> None:
        while True:
            if self._state == HEADER:
                progressed = self._header(final)
            elif self._state == BODY:
                progressed = self._body(final)
            else:
                self._buf, progressed = "", False
            if not progressed:
                return

    def _header(self, final: bool) -> bool:
        buf = self._buf
        i = buf.find(_MESSAGE)
        head = buf if i < 0 else buf[:i]
        if i < 0 and not final:  # a partial <|message|> is not part of the header
            j = buf.rfind("<", max(0, len(buf) - len(_MESSAGE) + 1))
            if j >= 0 and _MESSAGE.startswith(buf[j:]):
                head = buf[:j]
        fail = _header_failure(head)
        if fail is not None:  # not a header: the text up to there is content
            self._problem("text outside a harmony message returned as content")
            self._kind, self._state = ContentDelta, BODY
            self._emit(ContentDelta(head[:fail]))
            self._buf = buf[fail:]
            return True
        if i < 0:
            if final:
                if head.strip():
                    self._problem("the output ended inside a message header")
                self._buf = ""
            return False
        self._buf = buf[i + len(_MESSAGE):]
        self._open(head)
        self._state = BODY
        return True

    def _open(self, header: str) -> None:
        header = header.replace("<|constrain|>", " ").replace("<|start|>", " ")
        role, _, channel_part = header.partition("<|channel|>")
        found = _RECIPIENT.search(header)
        recipient = found.group(1) if found else None
        words = channel_part.split()
        channel = words[0] if words and not words[0].startswith("to=") else None
        if recipient and recipient != "assistant":
            name = recipient.removeprefix("functions.")
            if self._tools_on:
                if name not in self._names:
                    self._problem(f"unknown function {name!r} called")
                self._kind, self._name, self._args = _CALL, name, []
                self._index = self._new_call(name)
                return
            self._problem(f"call to {recipient!r} returned as content: the request has no tools")
        self._kind = ReasoningDelta if channel == "analysis" else ContentDelta

    def _body(self, final: bool) -> bool:
        buf = self._buf
        i, tag = self._body_tags.find(buf, final)
        if i:
            if self._kind is _CALL:
                self._args.append(buf[:i])
                self._emit(ToolCallDelta(self._index, arguments=buf[:i]))
            else:
                self._emit(self._kind(buf[:i]))
        if tag is None:
            self._buf = buf[i:]
            return False
        self._close_message()
        if tag in ("<|start|>", "<|channel|>"):  # a new header without <|end|> first
            self._problem("a message was not closed with <|end|>")
            self._buf, self._state = buf[i:], HEADER
        else:
            self._buf = buf[i + len(tag):]
            self._state = HEADER if tag == "<|end|>" else DONE
        return True

    def _close_message(self) -> None:
        if self._kind is _CALL:
            args = "".join(self._args)
            if not args.strip():
                self._emit(ToolCallDelta(self._index, arguments="{}"))
            else:
                try:
                    valid = isinstance(json.loads(args), dict)
                except ValueError:
                    valid = False
                if not valid:
                    self._problem(f"tool call {self._name!r} has arguments that are not a "
                                  "JSON object; passed on as generated")
        self._kind, self._args = None, []

    def _end(self, reason: str) -> None:
        if self._state == BODY:  # the runtime may strip the stop token it stopped on
            self._close_message()


def _header_ok(head: str) -> bool:
    if len(head) > _HEADER_MAX:
        return False
    head = head.lstrip()
    if "<|start|>".startswith(head):
        return True
    head = head.removeprefix("<|start|>").lstrip()
    return any(head.startswith(p) or p.startswith(head) for p in _HEADER_STARTS)


def _header_failure(head: str) -> int | None:
    """None if ``head`` can begin a header, else the length of its shortest prefix that
    cannot (so every chunking of the same text gives the same answer)."""
    if _header_ok(head):
        return None
    ok, bad = 0, len(head)
    while bad - ok > 1:
        mid = (ok + bad) // 2
        if _header_ok(head[:mid]):
            ok = mid
        else:
            bad = mid
    return bad
