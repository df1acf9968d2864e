"""The request's side: ``response_format`` read and its schema compiled once; the schemas of
the tools a constrained answer may call compiled too. Every refusal is an OpenAI-style 400
naming the parameter and the schema feature."""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import InvalidRequest
from ..types import ResponseFormat
from .schema import SchemaError, check
from .target import call_of

TYPES = ("text", "json_object", "json_schema")


def parse_response_format(value: Any) -> ResponseFormat | None:
    """OpenAI's ``response_format`` -> :class:`ResponseFormat` (None for text)."""
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind not in TYPES:
        raise InvalidRequest(
            "'response_format' must be {'type': 'text' | 'json_object' | 'json_schema'}",
            param="response_format")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat("json_object")
    spec = value.get("json_schema")
    where = "response_format.json_schema"
    if not isinstance(spec, Mapping):
        raise InvalidRequest(f"'{where}' must be an object with a name and a schema",
                             param=where)
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"'{where}.name' is required", param=f"{where}.name")
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise InvalidRequest(f"'{where}.strict' must be a boolean", param=f"{where}.strict")
    schema = spec.get("schema", {"type": "object"})
    try:
        check(schema, strict=strict is not False, what=f"{where}.schema")
    except SchemaError as exc:
        raise InvalidRequest(_hint(str(exc), strict), param=f"{where}.schema",
                             code="invalid_schema") from None
    return ResponseFormat("json_schema", schema, name, strict is not False)


def check_calls(tools: list | None, tool_choice: Any, response_format: Any) -> None:
    """Compile the schemas of the tools a constrained answer may call."""
    if not tools or tool_choice == "none":
        return
    forced = tool_choice == "required" or isinstance(tool_choice, Mapping)
    if not forced and response_format is None:
        return  # nothing is constrained: the model calls as it likes
    for i, tool in enumerate(tools):
        name = tool["function"]["name"]
        if isinstance(tool_choice, Mapping) and tool_choice["function"]["name"] != name:
            continue
        call = call_of(tool)
        where = f"tools[{i}].function.parameters"
        try:
            check(call.parameters, strict=call.strict, what=where)
        except SchemaError as exc:
            raise InvalidRequest(str(exc), param=where, code="invalid_schema") from None


def _hint(message: str, strict: Any) -> str:
    if strict is None or strict is True:
        return message + "; remove that keyword, or set strict: false for best effort"
    return message
