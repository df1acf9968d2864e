"""Validate an OpenAI chat-completions body into a :class:`llmux.types.ChatRequest`.

Every rejection is an :class:`InvalidRequest` naming the offending ``param``, so the client
sees OpenAI's 400 error shape and knows which field to fix.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import InvalidRequest
from ..structured.request import check_calls, parse_response_format
from ..types import ChatRequest, SamplingParams, VirtualModel
from .images import check_image_url
from .tools import check_tool_calls, check_tool_choice, check_tools

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
PART_TYPES = {"text", "image_url", "input_audio", "refusal"}
#: The string each part type carries besides its type.
PART_TEXT = {"text": "text", "refusal": "refusal"}
#: OpenAI's seed is an integer; runtimes take a 64-bit value (torch.manual_seed: signed or
#: unsigned), so anything in either 64-bit range is accepted.
SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1


def _number(body: Mapping, name: str, lo: float, hi: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f"'{name}' must be a number", param=name)
    if not lo <= value <= hi:
        raise InvalidRequest(f"'{name}' must be between {lo:g} and {hi:g}, got {value}", param=name)
    return float(value)


def _integer(body: Mapping, name: str, lo: int, hi: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"'{name}' must be an integer", param=name)
    if value < lo:
        raise InvalidRequest(f"'{name}' must be at least {lo}, got {value}", param=name)
    if hi is not None and value > hi:
        raise InvalidRequest(f"'{name}' must be at most {hi}, got {value}", param=name)
    return value


def _stop(body: Mapping) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 4:
        return tuple(s for s in stop if s)
    raise InvalidRequest("'stop' must be a string or a list of at most 4 strings", param="stop")


def has_images(messages) -> bool:
    return any(
        isinstance(m.get("content"), list)
        and any(isinstance(p, dict) and p.get("type") == "image_url" for p in m["content"])
        for m in messages
    )


def _check_messages(messages: Any) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty list", param="messages")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where} must be an object", param=where)
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise InvalidRequest(
                f"{where}.role must be one of {', '.join(sorted(ROLES))}, got {role!r}",
                param=f"{where}.role",
            )
        content = message.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                _check_part(part, f"{where}.content[{j}]")
        elif content is not None and not isinstance(content, str):
            raise InvalidRequest(f"{where}.content must be a string or a list of parts",
                                 param=f"{where}.content")
        elif content is None and role in ("user", "system", "developer"):
            raise InvalidRequest(f"{where}.content is required for role {role!r}",
                                 param=f"{where}.content")
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise InvalidRequest(f"{where}.tool_call_id is required for role 'tool'",
                                 param=f"{where}.tool_call_id")
        if role == "assistant" and message.get("tool_calls") is not None:
            check_tool_calls(message["tool_calls"], f"{where}.tool_calls")
    return messages


def _check_part(part: Any, where: str) -> None:
    kind = part.get("type") if isinstance(part, dict) else None
    if not isinstance(kind, str) or kind not in PART_TYPES:
        raise InvalidRequest(
            f"{where} must be a content part with a type of {', '.join(sorted(PART_TYPES))}",
            param=where,
        )
    kind = part["type"]
    if kind in PART_TEXT and not isinstance(part.get(PART_TEXT[kind]), str):
        raise InvalidRequest(f"{where}.{PART_TEXT[kind]} must be a string",
                             param=f"{where}.{PART_TEXT[kind]}")
    if kind == "image_url":
        url = part.get("image_url")
        url = url.get("url") if isinstance(url, dict) else url
        if not isinstance(url, str) or not url:
            raise InvalidRequest(f"{where}.image_url.url must be a string",
                                 param=f"{where}.image_url")
    if kind == "input_audio":
        audio = part.get("input_audio")
        if not isinstance(audio, dict) or not isinstance(audio.get("data"), str):
            raise InvalidRequest(f"{where}.input_audio must be an object with base64 'data'",
                                 param=f"{where}.input_audio")


def _check_images(messages: list[dict]) -> None:
    """Each image data URL holds an image (after _check_messages: the parts are sound)."""
    for i, message in enumerate(messages):
        content = message.get("content")
        for j, part in enumerate(content if isinstance(content, list) else ()):
            if part["type"] == "image_url":
                url = part["image_url"]
                check_image_url(url.get("url") if isinstance(url, dict) else url,
                                f"messages[{i}].content[{j}].image_url")


def parse_chat_request(body: Any, virtual: VirtualModel) -> ChatRequest:
    """Validate ``body`` for ``virtual``; capability errors are caught before any load."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    messages = _check_messages(body.get("messages"))
    tools = check_tools(body.get("tools"))
    tool_choice = check_tool_choice(body.get("tool_choice"), tools)
    if tool_choice == "none":
        tools = None  # one meaning for every runtime: the model sees no tools at all
    response_format = parse_response_format(body.get("response_format"))
    check_calls(tools, tool_choice, response_format)
    physical = virtual.physical
    if has_images(messages) and not physical.vision:
        raise InvalidRequest(
            f"model {virtual.name!r} does not accept images; use a vision model "
            "such as a qwen3.5 variant", param="messages",
        )
    _check_images(messages)
    if tools and not physical.tools:
        raise InvalidRequest(f"model {virtual.name!r} does not support tools", param="tools")
    n = _integer(body, "n", 1)
    if n not in (None, 1):
        raise InvalidRequest("only n=1 is supported", param="n")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
    parallel = body.get("parallel_tool_calls", True)
    if not isinstance(parallel, bool):
        raise InvalidRequest("'parallel_tool_calls' must be a boolean",
                             param="parallel_tool_calls")

    defaults = virtual.behaviour.sampling
    max_tokens = _integer(body, "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = _integer(body, "max_tokens", 1)

    def pick(value, name):
        return value if value is not None else defaults.get(name)

    sampling = SamplingParams(
        temperature=pick(_number(body, "temperature", 0, 2), "temperature"),
        top_p=pick(_number(body, "top_p", 0, 1), "top_p"),
        max_tokens=pick(max_tokens, "max_tokens"),
        stop=_stop(body),
        seed=_integer(body, "seed", SEED_MIN, SEED_MAX),
        presence_penalty=pick(_number(body, "presence_penalty", -2, 2), "presence_penalty"),
        frequency_penalty=pick(_number(body, "frequency_penalty", -2, 2), "frequency_penalty"),
    )
    return ChatRequest(
        model=virtual.name,
        messages=messages,
        behaviour=virtual.behaviour,
        sampling=sampling,
        tools=tools,
        tool_choice=tool_choice,
        stream=stream,
        response_format=response_format,
        parallel_tool_calls=parallel,
    )


def include_usage(body: Mapping) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise InvalidRequest("'stream_options' must be an object", param="stream_options")
    return bool(options.get("include_usage"))
