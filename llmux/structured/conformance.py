"""A conformance set for structured outputs: the JSON Schemas (and forced tools) every
runtime must enforce, used by the tests of the core and of both runtime plugins; a
third-party runtime can run its own tests over them (``from llmux.structured import
conformance``).

Every schema bounds its answer (strings by maxLength, pattern, enum or format; integers by
a range; arrays by maxItems; no additional properties), so a model that follows the
constraint always finishes well inside the tests' ``max_tokens``: a random-weight model's
answer validates only if the constraint is real, and never fails for being cut short.
"""

from __future__ import annotations


def obj(properties: dict, required: list | None = None) -> dict:
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required,
            "additionalProperties": False}


SHORT = {"type": "string", "maxLength": 8}
SMALL = {"type": "integer", "minimum": -20, "maximum": 20}

SCHEMAS: dict[str, dict] = {
    "flat": obj({"name": SHORT, "age": {"type": "integer", "minimum": 0, "maximum": 120}}),
    "enum": obj({"color": {"enum": ["red", "green", "blue"]}}),
    "nested": obj({"person": obj({"name": SHORT, "address": obj({
        "city": {"type": "string", "maxLength": 6},
        "zip": {"type": "string", "pattern": "^[0-9]{5}$"}})})}),
    "int_array": obj({"values": {"type": "array", "items": SMALL, "minItems": 1,
                                 "maxItems": 4}}),
    "object_array": obj({"rows": {"type": "array", "maxItems": 3, "items": obj({
        "id": {"type": "integer", "minimum": 0, "maximum": 99}, "ok": {"type": "boolean"}})}}),
    "optional": obj({"a": SMALL, "b": SHORT, "c": {"type": "boolean"}}, required=["a"]),
    "any_of": obj({"value": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 9},
                                       {"type": "string", "maxLength": 5}]}}),
    "number_range": obj({"x": {"type": "number", "minimum": 0, "maximum": 1},
                         "y": {"type": "number", "minimum": -10.5, "maximum": 10.5}}),
    "pattern": obj({"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"}}),
    "bool_null": obj({"flag": {"type": "boolean"}, "nothing": {"type": "null"}}),
    "const": obj({"kind": {"const": "point"}, "n": SMALL}),
    "matrix": obj({"m": {"type": "array", "maxItems": 2, "items": {
        "type": "array", "maxItems": 2, "items": {"type": "integer", "minimum": 0,
                                                  "maximum": 9}}}}),
    "refs": {**obj({"item": {"$ref": "#/$defs/item"}}),
             "$defs": {"item": obj({"sku": {"type": "string", "pattern": "^[a-z]{2}[0-9]$"},
                                    "qty": {"type": "integer", "minimum": 1, "maximum": 9}})}},
    "int_enum": obj({"level": {"enum": [1, 2, 3]}}),
    "length": obj({"s": {"type": "string", "minLength": 2, "maxLength": 4}}),
    "nullable": obj({"maybe": {"type": ["integer", "null"], "minimum": 0, "maximum": 50}}),
    "exclusive": obj({"e": {"type": "integer", "exclusiveMinimum": 0,
                            "exclusiveMaximum": 10}}),
    "one_of": obj({"shape": {"oneOf": [
        obj({"type": {"const": "circle"}, "r": {"type": "integer", "minimum": 1,
                                                 "maximum": 9}}),
        obj({"type": {"const": "square"}, "side": {"type": "integer", "minimum": 1,
                                                    "maximum": 9}})]}}),
    "all_of": {"allOf": [{"type": "object", "properties": {"a": SMALL}, "required": ["a"]},
                         obj({"a": SMALL, "b": SHORT})]},
    "pair": obj({"pair": {"type": "array", "minItems": 2, "maxItems": 2,
                          "items": {"enum": ["x", "y", "z"]}}}),
    "date": obj({"when": {"type": "string", "format": "date"}}),
    "deep": obj({"a": obj({"b": obj({"c": obj({"d": {"enum": [True, False]}})})})}),
    "mixed": obj({"tags": {"type": "array", "maxItems": 3, "items": SHORT},
                  "score": {"type": "integer", "minimum": 0, "maximum": 100},
                  "note": {"anyOf": [SHORT, {"type": "null"}]}}, required=["tags"]),
}

#: Tools whose arguments are bounded the same way (name -> parameters schema).
TOOL_SCHEMAS: dict[str, dict] = {
    "get_weather": obj({"city": {"type": "string", "maxLength": 10},
                        "days": {"type": "integer", "minimum": 1, "maximum": 7},
                        "unit": {"enum": ["c", "f"]}}, required=["city"]),
    "add_items": obj({"items": {"type": "array", "maxItems": 3, "items": SMALL},
                      "label": {"type": "string", "pattern": "^[a-z]{1,6}$"},
                      "urgent": {"type": "boolean"}}, required=["items", "label"]),
}
TOOLS = [{"type": "function", "function": {"name": name, "description": f"{name} tool",
                                           "parameters": params}}
         for name, params in TOOL_SCHEMAS.items()]


def response_format(name: str) -> dict:
    return {"type": "json_schema",
            "json_schema": {"name": name, "schema": SCHEMAS[name], "strict": True}}


class StreamedAnswer:
    """What an ``openai`` client's streamed chat chunks add up to: content, reasoning, the
    tool calls as ``(name, arguments)`` in index order, and the finish reason."""

    def __init__(self) -> None:
        self.content = self.reasoning = ""
        self.finish = None
        self._calls: dict[int, tuple[str, str]] = {}

    def add(self, chunk) -> None:
        for choice in chunk.choices:
            delta = choice.delta
            self.content += delta.content or ""
            self.reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
            for call in delta.tool_calls or ():
                name, args = self._calls.get(call.index, ("", ""))
                self._calls[call.index] = (name + (call.function.name or ""),
                                           args + (call.function.arguments or ""))
            self.finish = choice.finish_reason or self.finish

    def result(self) -> tuple[str, str, list[tuple[str, str]], str | None]:
        calls = [self._calls[i] for i in sorted(self._calls)]
        return self.content, self.reasoning, calls, self.finish
