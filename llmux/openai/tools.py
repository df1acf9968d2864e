"""Tools in a chat request: the definitions, the choice among them, and earlier calls.

Chat templates iterate these structures, so what they read is checked here, before any
model is leased: a shape they cannot take is a 400 naming the field, not a 500.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest


def check_tools(tools: Any) -> list[dict] | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be a list", param="tools")
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise InvalidRequest(f"tools[{i}] must be {{'type': 'function', 'function': {{...}}}}",
                                 param=f"tools[{i}]")
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            raise InvalidRequest(f"tools[{i}].function.name is required",
                                 param=f"tools[{i}].function.name")
        _check_parameters(fn.get("parameters"), f"tools[{i}].function.parameters")
    return tools or None


def _check_parameters(params: Any, where: str) -> None:
    """The JSON Schema of a tool's arguments, as far as chat templates read it."""
    if params is None:
        return
    if not isinstance(params, dict):
        raise InvalidRequest(f"{where} must be a JSON Schema object", param=where)
    properties = params.get("properties")
    if properties is not None:
        if not isinstance(properties, dict):
            raise InvalidRequest(f"{where}.properties must be an object of schemas",
                                 param=f"{where}.properties")
        for name, schema in properties.items():
            if not isinstance(schema, dict):
                raise InvalidRequest(f"{where}.properties.{name} must be a JSON Schema object",
                                     param=f"{where}.properties.{name}")
    required = params.get("required")
    if required is not None and not (
            isinstance(required, list) and all(isinstance(r, str) for r in required)):
        raise InvalidRequest(f"{where}.required must be a list of property names",
                             param=f"{where}.required")


def check_tool_choice(choice: Any, tools: list | None) -> Any:
    if choice is None or choice in ("auto", "none", "required"):
        if choice == "required" and not tools:
            raise InvalidRequest("tool_choice 'required' needs 'tools'", param="tool_choice")
        return choice
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        if not any(t["function"]["name"] == name for t in tools or ()):
            raise InvalidRequest(f"tool_choice names {name!r}, which is not in 'tools'",
                                 param="tool_choice")
        return choice
    raise InvalidRequest("tool_choice must be 'auto', 'none', 'required' or a function choice",
                         param="tool_choice")


def check_tool_calls(calls: Any, where: str) -> None:
    """An assistant's earlier calls: a list of {"function": {"name", "arguments"}}."""
    if not isinstance(calls, list):
        raise InvalidRequest(f"{where} must be a list of tool calls", param=where)
    for k, call in enumerate(calls):
        at = f"{where}[{k}]"
        if not isinstance(call, dict):
            raise InvalidRequest(f"{at} must be an object", param=at)
        fn = call.get("function")
        if not isinstance(fn, dict):
            raise InvalidRequest(f"{at}.function must be an object with a name and arguments",
                                 param=f"{at}.function")
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            raise InvalidRequest(f"{at}.function.name must be a non-empty string",
                                 param=f"{at}.function.name")
        if not isinstance(fn.get("arguments", ""), (str, dict)):
            raise InvalidRequest(f"{at}.function.arguments must be a JSON string",
                                 param=f"{at}.function.arguments")
