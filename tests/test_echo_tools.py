"""The echo runtime calls a tool only when asked (issue #19: the demo answers in Open WebUI).

Open WebUI offers its built-in tools with every chat request and leaves ``tool_choice`` out;
a plain question must then be answered with text, not a tool call. echo calls a tool when
``tool_choice`` requires one or the last user message names an offered tool.
"""

from __future__ import annotations

import json

import pytest

from .conftest import AUTH
from .test_http import sse_events

CHAT = "/v1/chat/completions"


def tool(name: str, *required: str) -> dict:
    return {"type": "function", "function": {
        "name": name, "description": f"the {name} tool",
        "parameters": {"type": "object",
                       "properties": {p: {"type": "string"} for p in required},
                       "required": list(required)}}}


# The shape Open WebUI sends: its built-in tools with every chat, no tool_choice.
OPEN_WEBUI_TOOLS = [tool(name, *args) for name, args in [
    ("search_web", ("query",)), ("fetch_url", ("url",)), ("generate_image", ("prompt",)),
    ("edit_image", ("prompt",)), ("search_memories", ("query",)), ("add_memory", ("content",)),
    ("replace_memory_content", ("id", "content")), ("delete_memory", ("id",)),
    ("search_notes", ("query",)), ("view_note", ("id",)), ("write_note", ("title", "content")),
    ("replace_note_content", ("id", "content")), ("search_chats", ("query",)),
    ("view_chat", ("id",)), ("search_knowledge_bases", ("query",)),
    ("query_knowledge_bases", ("query",)), ("search_knowledge_files", ("query",)),
    ("query_knowledge_files", ("query",)), ("view_knowledge_file", ("id",)),
    ("get_current_timestamp", ()), ("calculate_timestamp", ("expression",)),
    ("execute_code", ("code",)), ("search_channels", ("query",)),
    ("view_channel_messages", ("id",)), ("list_models", ()), ("get_weather", ("city",)),
]]
assert len(OPEN_WEBUI_TOOLS) == 26

MODELS = ["qwen3.5-4b-instruct", "qwen3.5-4b-thinking", "gpt-oss-20b-low"]
REASONING = {"qwen3.5-4b-instruct": None,
             "qwen3.5-4b-thinking": "Reasoning about the request.",
             "gpt-oss-20b-low": "Reasoning at low effort about the request."}


def body(model: str, content, *, history=(), **extra) -> dict:
    return {"model": model, "messages": [*history, {"role": "user", "content": content}],
            **extra}


async def complete(client, request: dict) -> dict:
    resp = await client.post(CHAT, headers=AUTH, json=request)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["choices"][0]


async def stream(client, request: dict) -> tuple[list[dict], str]:
    """The deltas (role chunk and usage chunk left out) and the finish reason."""
    resp = await client.post(CHAT, headers=AUTH, json={
        **request, "stream": True, "stream_options": {"include_usage": True}})
    assert resp.status == 200, await resp.text()
    events = sse_events(await resp.read())
    assert events[-1] == "[DONE]"
    chunks = [c for c in events[:-1] if c["choices"]]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks]
    assert all(f is None for f in finishes[:-1])
    return [c["choices"][0]["delta"] for c in chunks[1:]], finishes[-1]


def merged_calls(deltas: list[dict]) -> list[dict]:
    """Tool-call deltas merged by index, as Open WebUI merges them."""
    calls: dict[int, dict] = {}
    for delta in deltas:
        for part in delta.get("tool_calls", []):
            call = calls.setdefault(part["index"], {"id": None, "name": "", "arguments": ""})
            call["id"] = part.get("id") or call["id"]
            call["name"] += part.get("function", {}).get("name", "")
            call["arguments"] += part.get("function", {}).get("arguments", "")
    return [calls[i] for i in sorted(calls)]


# ------------------------------------------------------------------ no call unless asked


@pytest.mark.parametrize("model", MODELS)
async def test_open_webui_plain_question_is_echoed(demo_client, model):
    question = "What is the capital of France?"
    choice = await complete(demo_client, body(model, question, tools=OPEN_WEBUI_TOOLS))
    assert choice["finish_reason"] == "stop"
    message = choice["message"]
    assert message["content"] == question
    assert not message.get("tool_calls")
    assert message.get("reasoning_content") == REASONING[model]


@pytest.mark.parametrize("model", MODELS)
async def test_open_webui_plain_question_streams_text(demo_client, model):
    question = "Tell me about the weather and search the web for news"
    deltas, finish = await stream(demo_client, body(model, question, tools=OPEN_WEBUI_TOOLS))
    assert finish == "stop"
    assert not any("tool_calls" in d for d in deltas)
    assert "".join(d.get("content") or "" for d in deltas) == question
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    assert reasoning == (REASONING[model] or "")


@pytest.mark.parametrize("content", [
    "what is the weather",            # words of a name, not the name
    "call get_weather_v2 please",     # the name inside a longer identifier
    "use myget_weather",
    "use GET_WEATHER",                # names are case-sensitive
])
async def test_text_that_does_not_name_a_tool_is_echoed(demo_client, content):
    choice = await complete(demo_client, body(
        "qwen3.5-4b-instruct", content, tools=OPEN_WEBUI_TOOLS, tool_choice="auto"))
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == content
    assert not choice["message"].get("tool_calls")


async def test_tool_choice_none_never_calls(demo_client):
    content = "Use get_weather for Paris."
    choice = await complete(demo_client, body(
        "qwen3.5-4b-instruct", content, tools=OPEN_WEBUI_TOOLS, tool_choice="none"))
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == content
    assert not choice["message"].get("tool_calls")


async def test_after_a_tool_result_it_answers_with_text(demo_client):
    history = [{"role": "user", "content": "Use get_weather for Paris."},
               {"role": "assistant", "content": None, "tool_calls": [{
                   "id": "call_echo0", "type": "function",
                   "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}]
    request = {"model": "qwen3.5-4b-thinking", "tools": OPEN_WEBUI_TOOLS, "messages": [
        *history, {"role": "tool", "tool_call_id": "call_echo0", "content": "sunny"}]}
    choice = await complete(demo_client, request)
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == "The tool returned: sunny"
    assert choice["message"]["reasoning_content"] == "Reasoning about the request."
    assert not choice["message"].get("tool_calls")


# ------------------------------------------------------------------ calls when asked


@pytest.mark.parametrize("model", MODELS)
async def test_a_message_naming_a_tool_calls_it(demo_client, model):
    choice = await complete(demo_client, body(
        model, "What is the weather in Berlin? Use the get_weather tool.",
        tools=OPEN_WEBUI_TOOLS))
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [{"id": "call_echo0", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "echo"}'}}]
    assert message.get("reasoning_content") == REASONING[model]


@pytest.mark.parametrize("model", MODELS)
async def test_a_message_naming_a_tool_streams_the_call(demo_client, model):
    deltas, finish = await stream(demo_client, body(
        model, "fetch_url: https://example.com", tools=OPEN_WEBUI_TOOLS))
    assert finish == "tool_calls"
    calls = [part for d in deltas for part in d.get("tool_calls", [])]
    assert calls[0] == {"index": 0, "id": "call_echo0", "type": "function",
                        "function": {"name": "fetch_url", "arguments": ""}}
    assert all(set(c) == {"index", "function"} and "name" not in c["function"]
               for c in calls[1:])
    assert merged_calls(deltas) == [
        {"id": "call_echo0", "name": "fetch_url", "arguments": '{"url": "echo"}'}]
    assert not "".join(d.get("content") or "" for d in deltas)
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    assert reasoning == (REASONING[model] or "")


async def test_the_tool_named_first_in_the_message_is_called(demo_client):
    choice = await complete(demo_client, body(
        "qwen3.5-4b-instruct", "Run execute_code, then search_web with the result.",
        tools=OPEN_WEBUI_TOOLS))
    assert [c["function"]["name"] for c in choice["message"]["tool_calls"]] == ["execute_code"]


async def test_a_tool_named_in_content_parts_is_called(demo_client):
    content = [{"type": "text", "text": "please"}, {"type": "text", "text": "get_weather"}]
    choice = await complete(demo_client, body(
        "qwen3.5-4b-instruct", content, tools=OPEN_WEBUI_TOOLS))
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


async def test_only_the_last_user_message_counts(demo_client):
    history = [{"role": "user", "content": "use get_weather"},
               {"role": "assistant", "content": "done"}]
    choice = await complete(demo_client, body(
        "qwen3.5-4b-instruct", "thanks", history=history, tools=OPEN_WEBUI_TOOLS))
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == "thanks"


@pytest.mark.parametrize("streamed", [False, True])
async def test_tool_choice_required_calls_the_first_tool(demo_client, streamed):
    request = body("gpt-oss-20b-low", "hello there", tools=OPEN_WEBUI_TOOLS,
                   tool_choice="required")
    if streamed:
        deltas, finish = await stream(demo_client, request)
        calls = merged_calls(deltas)
    else:
        choice = await complete(demo_client, request)
        finish = choice["finish_reason"]
        calls = [{"id": c["id"], **c["function"]} for c in choice["message"]["tool_calls"]]
    assert finish == "tool_calls"
    assert calls == [{"id": "call_echo0", "name": "search_web", "arguments": '{"query": "echo"}'}]


async def test_tool_choice_required_prefers_the_tool_the_message_names(demo_client):
    choice = await complete(demo_client, body(
        "qwen3.5-4b-instruct", "view_note 7 please", tools=OPEN_WEBUI_TOOLS,
        tool_choice="required"))
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "view_note"


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_function_tool_choice_calls_that_tool(demo_client, streamed):
    request = body("qwen3.5-4b-thinking", "use search_web", tools=OPEN_WEBUI_TOOLS,
                   tool_choice={"type": "function", "function": {"name": "write_note"}})
    if streamed:
        deltas, finish = await stream(demo_client, request)
        calls = merged_calls(deltas)
    else:
        choice = await complete(demo_client, request)
        finish = choice["finish_reason"]
        calls = [{"id": c["id"], **c["function"]} for c in choice["message"]["tool_calls"]]
    assert finish == "tool_calls"
    assert len(calls) == 1 and calls[0]["name"] == "write_note"
    assert json.loads(calls[0]["arguments"]) == {"title": "echo", "content": "echo"}
