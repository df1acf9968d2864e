"""Typing tool-call parameter values by the tool's JSON schema.

Qwen3.5 writes every parameter value as text; vLLM's ``qwen3_coder`` parser converts it
with the declared type, and so does this module: ``null`` (any case) -> None, then
integer, number, boolean, object/array (JSON), and string for everything else.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

_STRING = {"string", "str", "text", "varchar", "char", "enum"}
_INTEGER = {"integer", "int", "uint", "long", "short", "unsigned"}
_NUMBER = {"number", "num", "float", "double"}
_BOOLEAN = {"boolean", "bool", "binary"}
_JSON = {"object", "array", "dict", "list"}


def tool_properties(
    tools: Sequence[Mapping[str, Any]] | None,
) -> dict[str, Mapping[str, Any]]:
    """``{function name: its parameters' "properties"}`` from OpenAI tool objects."""
    out: dict[str, Mapping[str, Any]] = {}
    for tool in tools or ():
        function = tool.get("function", tool) if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            continue
        parameters = function.get("parameters")
        props = parameters.get("properties") if isinstance(parameters, Mapping) else None
        out[function["name"]] = props if isinstance(props, Mapping) else {}
    return out


def schema_types(spec: Any) -> list[str]:
    """The type names a property schema allows, in order (``[]`` when it says none)."""
    if not isinstance(spec, Mapping):
        return []
    declared = spec.get("type")
    if isinstance(declared, str):
        return [declared.lower()]
    if isinstance(declared, list):
        return [t.lower() for t in declared if isinstance(t, str)]
    types: list[str] = []
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in spec.get(key) or ():
            types += [t for t in schema_types(sub) if t not in types]
    if not types and isinstance(spec.get("properties"), Mapping):
        types = ["object"]
    if not types and "items" in spec:
        types = ["array"]
    return types


def convert(raw: str, spec: Any) -> tuple[Any, str | None]:
    """Type ``raw`` by ``spec``; return ``(value, problem)``. A value that fits none of the
    declared types stays a string and ``problem`` says so."""
    if raw.strip().lower() == "null":
        return None, None
    types = [t for t in schema_types(spec) if t != "null"]
    if not types or types[0] in _STRING:
        return raw, None
    text = raw.strip()
    for t in types:
        if t in _STRING:
            return raw, None
        value = _as(t, text)
        if value is not _NO:
            return value, None
    return raw, f"value {_short(raw)} is not of type {'/'.join(types)}; passed as a string"


_NO = object()


def _as(t: str, text: str) -> Any:
    if t in _INTEGER or t.startswith("int"):
        try:
            return int(text)
        except ValueError:
            number = _float(text)
            return int(number) if number is not None and number.is_integer() else _NO
    if t in _NUMBER:
        try:
            return int(text)
        except ValueError:
            number = _float(text)
            return _NO if number is None else number
    if t in _BOOLEAN:
        lowered = text.lower()
        return {"true": True, "false": False}.get(lowered, _NO)
    if t in _JSON:
        try:
            value = json.loads(text, parse_constant=_reject)
        except ValueError:
            return _NO
        if t in ("object", "dict") and not isinstance(value, dict):
            return _NO
        if t in ("array", "list") and not isinstance(value, list):
            return _NO
        return value
    return _NO


def _float(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _reject(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _short(raw: str) -> str:
    return repr(raw if len(raw) <= 40 else raw[:37] + "...")
