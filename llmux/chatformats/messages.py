"""History helpers shared by the formats: OpenAI messages -> what chat templates read.

All functions return new objects; the caller's messages are never modified.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Mapping, Sequence

log = logging.getLogger(__name__)

SYSTEM_ROLES = ("system", "developer")
# Where clients put earlier reasoning: llama.cpp / vLLM, OpenRouter, Ollama / gpt-oss.
REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")
_THINK_BLOCK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def copy_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copy each message; tool calls get dict ``arguments`` (templates iterate them)."""
    out = []
    for message in messages:
        m = dict(message)
        if isinstance(m.get("content"), list):
            m["content"] = [dict(p) if isinstance(p, Mapping) else p for p in m["content"]]
        if m.get("tool_calls"):
            m["tool_calls"] = [_with_dict_arguments(call) for call in m["tool_calls"]]
        out.append(m)
    return out


def _with_dict_arguments(call: Mapping[str, Any]) -> dict[str, Any]:
    call = dict(call)
    function = call.get("function")
    if isinstance(function, Mapping):
        function = dict(function)
        args = function.get("arguments")
        if isinstance(args, str):
            try:
                parsed = json.loads(args) if args.strip() else {}
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                function["arguments"] = parsed
            else:  # left as the string: the template decides what to do with it
                log.info("tool call arguments are not a JSON object: %.80r", args)
        call["function"] = function
    return call


def pop_reasoning(message: dict[str, Any]) -> str | None:
    """Remove every reasoning field and ``<think>…</think>`` from ``message``; return the
    reasoning (the explicit field wins over think blocks found in the content)."""
    reasoning = None
    for key in REASONING_KEYS:
        value = message.pop(key, None)
        if reasoning is None and isinstance(value, str) and value:
            reasoning = value
    content = message.get("content")
    if isinstance(content, str) and "</think>" in content:
        found, message["content"] = split_think(content)
        if reasoning is None:
            reasoning = found
    return reasoning


def split_think(content: str) -> tuple[str | None, str]:
    """``"<think>r</think>\\n\\nanswer"`` -> ``("r", "answer")``. Handles several blocks and
    an unopened ``r</think>answer`` (Qwen3.5 output starts inside the reasoning)."""
    parts = [m.group(1).strip("\n") for m in _THINK_BLOCK.finditer(content)]
    content = _THINK_BLOCK.sub("", content)
    if "</think>" in content:
        head, _, content = content.rpartition("</think>")
        head = head.replace("<think>", "").strip("\n")
        parts.insert(0, head)
    reasoning = "\n\n".join(p for p in parts if p)
    return reasoning or None, content.lstrip("\n")


def text_of(content: Any) -> Any:
    """A content-part list holding only text -> one string; anything else unchanged."""
    if isinstance(content, list) and all(
        isinstance(p, Mapping) and p.get("type") == "text" for p in content
    ):
        return "\n".join(str(p.get("text", "")) for p in content)
    return content


def merge_leading_system(messages: list[dict[str, Any]], role: str | None) -> None:
    """Merge a run of leading system/developer messages into the first one (templates read
    only ``messages[0]``); ``role`` renames it (e.g. developer -> system), None keeps it."""
    if not messages or messages[0].get("role") not in SYSTEM_ROLES:
        return
    first = messages[0]
    if role:
        first["role"] = role
    while len(messages) > 1 and messages[1].get("role") in SYSTEM_ROLES:
        a, b = text_of(first.get("content")), text_of(messages[1].get("content"))
        if not (isinstance(a, str) and isinstance(b, str)):
            break
        first["content"] = "\n\n".join(x for x in (a, b) if x)
        del messages[1]


def apply_prefix(messages: list[dict[str, Any]], prefix: str | None) -> list[dict[str, Any]]:
    """Put ``prefix`` at the start of the first system/developer message (a blank line
    between), or insert a system message holding it."""
    if not prefix:
        return messages
    if messages and messages[0].get("role") in SYSTEM_ROLES:
        content = messages[0].get("content")
        if isinstance(content, list):
            messages[0]["content"] = [{"type": "text", "text": prefix + "\n\n"}, *content]
        else:
            messages[0]["content"] = f"{prefix}\n\n{content}" if content else prefix
    else:
        messages.insert(0, {"role": "system", "content": prefix})
    return messages
