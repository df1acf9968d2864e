"""JSON Schema -> the engine's grammar, checked once: what the core refuses with a 400.

The engine is llguidance (measured against xgrammar in ``benchmarks/structured.py``). A schema
becomes a ``%json{...}`` expression of llguidance's Lark dialect; every runtime embeds the
same expression, so all of them accept and refuse the same schemas. JSON is compact (no
whitespace between tokens): a weak or random model cannot pad an answer forever.

``strict`` False (OpenAI's ``strict: false``) compiles leniently: keywords the engine cannot
enforce (``uniqueItems``, ``not``, ...) are ignored and logged; strict, they are a refusal
that names them.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any, Mapping

log = logging.getLogger("llmux.structured")

#: llguidance's JSON compile options for every schema (``x-guidance``).
OPTIONS = {"whitespace_flexible": False}
ANY_OBJECT: Mapping[str, Any] = {"type": "object"}


class SchemaError(ValueError):
    """The engine cannot enforce a schema; the message names the feature."""


def json_lark(schema: Mapping[str, Any] | None, *, strict: bool = True) -> str:
    """The Lark expression for JSON following ``schema`` (None: any JSON object)."""
    doc = dict(schema if schema is not None else ANY_OBJECT)
    doc["x-guidance"] = {**OPTIONS, **({} if strict else {"lenient": True})}
    return "%json" + json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def check(schema: Mapping[str, Any] | None, *, strict: bool = True, what: str = "schema") -> None:
    """Compile ``schema`` once with the engine; raise :class:`SchemaError` if it cannot
    enforce it. Lenient compiles log what they ignore."""
    if schema is not None and not isinstance(schema, Mapping):
        raise SchemaError(f"{what} must be a JSON Schema object")
    text = json.dumps(schema if schema is not None else ANY_OBJECT, sort_keys=True)
    error, warnings = _compile(text, strict)
    if error:
        raise SchemaError(f"{what} cannot be enforced: {_clean(error)}")
    if warnings:
        log.warning("%s (strict: false) is enforced as far as the engine can: %s", what,
                    "; ".join(_clean(w) for w in warnings))


@functools.lru_cache(maxsize=256)
def _compile(text: str, strict: bool) -> tuple[str, tuple[str, ...]]:
    from llguidance import LLMatcher

    grammar = LLMatcher.grammar_from_lark("start: " + json_lark(json.loads(text), strict=strict))
    is_error, messages = LLMatcher.validate_grammar_with_warnings(grammar)
    if is_error:
        return (messages[0] if messages else "the engine refused it"), ()
    return "", tuple(messages)


def _clean(message: str) -> str:
    """llguidance's message without its position prefix and the grammar listing."""
    message = message.strip().removeprefix("WARNING: ")
    message = message.split("failed to compile JSON schema: ", 1)[-1]
    lines = [line.strip() for line in message.split("\n")]
    kept = [line for line in lines
            if line and not line.startswith("^") and not line[:6].strip().rstrip("|").isdigit()
            and " | " not in line[:8]]
    if kept and kept[0].startswith("at ") and "): " in kept[0]:
        kept[0] = kept[0].split("): ", 1)[1]
    return " ".join(" ".join(kept).split())[:500]
