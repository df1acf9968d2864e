"""Qwen3.5's constrained outputs: reasoning free up to ``</think>``, then the JSON answer or
XML tool calls whose parameter values follow each parameter's schema.

A call is what :class:`.qwen3_5.Qwen35Parser` reads::

    <tool_call>\\n<function=NAME>\\n<parameter=P>\\nVALUE\\n</parameter>\\n
    </function>\\n</tool_call>

Parameters come in the schema's order, the required ones always, the others optionally.
A value the parser types by its schema (integer, number, boolean, object, array) is compact
JSON of that property's schema; a string is raw text matching the string schema (``enum``,
``const``, ``pattern``, ``minLength``/``maxLength``), never ``null`` (the parser reads that
as None) and never a tag that would end the value early.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..structured.schema import SchemaError, json_lark
from ..structured.target import MAX_PARALLEL, Call, Target, lark_literal, lark_regex, lark_tag
from .params import schema_types

#: What would end a raw value early in the parser (the <|...|> ends are special tokens).
_BREAKS = r"(?s:.*(</parameter>|<parameter=|</function>|</tool_call>).*)\n"
_NOT_NULL = r"(?i:\s*null\s*)\n"


def grammar(target: Target, *, thinking: bool, specials: frozenset[str]) -> str:
    rules: list[str] = []
    body: list[str] = []
    if target.answer is not None:
        body.append("answer")
        rules.append(f"answer: {target.answer}")
    if target.calls:
        body.append("calls")
        more = f' ("\\n" call){{0,{MAX_PARALLEL - 1}}}' if target.parallel else ""
        rules.append(f"calls: call{more}")
        rules.append("call: " + " | ".join(f"call_{i}" for i in range(len(target.calls))))
        for i, call in enumerate(target.calls):
            rules += _call(i, call, specials)
    head = ""
    if thinking:
        end = "</think>"
        # Free text; without a </think> token, text that could spell a tag is kept out.
        rules.append("THINK: " + ("/(?s:.*)/" if end in specials else "/[^<]*/"))
        head = f'THINK {lark_tag(end, specials)} "\\n\\n" '
    return "\n".join([f"start: {head}({' | '.join(body)})", *rules]) + "\n"


def _call(i: int, call: Call, specials: frozenset[str]) -> list[str]:
    params = call.parameters
    props = params.get("properties") if isinstance(params.get("properties"), Mapping) else {}
    required = set(params.get("required") or ())
    defs = {k: params[k] for k in ("$defs", "definitions") if k in params}
    open_, close = lark_tag("<tool_call>", specials), lark_tag("</tool_call>", specials)
    head = lark_literal(f"\n<function={call.name}>\n")
    parts, rules = [], []
    for j, (name, spec) in enumerate(props.items()):
        rule = f"p_{i}_{j}"
        parts.append(rule if name in required else f"{rule}?")
        value = _value(f"{i}_{j}", spec, defs, call.strict, f"{call.name}({name})", rules)
        rules.append(f"{rule}: {lark_literal(f'<parameter={name}>' + chr(10))} {value} "
                     f"{lark_literal('</parameter>' + chr(10))}")
    body = " ".join(parts)
    return [f"call_{i}: {open_} {head} {body} {lark_literal('</function>' + chr(10))} {close}",
            *rules]


def _value(key: str, spec: Any, defs: Mapping, strict: bool, where: str,
           rules: list[str]) -> str:
    """The expression for one value followed by its newline; may add rules."""
    if not isinstance(spec, Mapping):
        spec = {}
    types = schema_types(spec)
    choices = []
    if not types or "string" in types:
        terminal = f"V_{key.upper()}"
        rules.append(f"{terminal}: {_raw_string(spec, types, strict, where)}")
        choices.append(terminal)
    if any(t != "string" for t in types):
        doc = {**defs, **spec}
        choices.append(f'{json_lark(doc, strict=strict)} "\\n"')
    rule = f"v_{key}"
    rules.append(f"{rule}: " + " | ".join(choices))
    return rule


def _raw_string(spec: Mapping, types: list[str], strict: bool, where: str) -> str:
    """A terminal: the raw text of a string value, then a newline."""
    values = None
    if "const" in spec:
        values = [spec["const"]]
    elif isinstance(spec.get("enum"), list):
        values = spec["enum"]
    if values is not None:
        texts = [v for v in values if isinstance(v, str)]
        if not texts:
            return "/\\x00\\n/ & /x\\n/"  # no string fits: an empty language
        return "/(" + "|".join(re.escape(t) for t in texts) + ")\\n/"
    if "format" in spec and strict:
        raise SchemaError(f"{where}: 'format' in a string parameter cannot be enforced in "
                          "Qwen3.5's XML tool calls; drop it or leave the function not strict")
    parts = [r"(?s:.*)\n"]
    pattern = spec.get("pattern")
    if isinstance(pattern, str):
        start = pattern[1:] if pattern.startswith("^") else r"(?s:.*)" + pattern
        start = start[:-1] if start.endswith("$") and not start.endswith("\\$") \
            else start + r"(?s:.*)"
        parts.append(f"(?:{start})\\n")
    lo, hi = spec.get("minLength"), spec.get("maxLength")
    if isinstance(lo, int) or isinstance(hi, int):
        lo = lo if isinstance(lo, int) else 0
        parts.append(f"(?s:.{{{lo},{hi if isinstance(hi, int) else ''}}})\\n")
    expr = " & ".join(lark_regex(p) for p in parts)
    expr += f" & ~{lark_regex(_BREAKS)}"
    if "null" not in types:
        expr += f" & ~{lark_regex(_NOT_NULL)}"
    return expr
