"""Structured outputs in the core: the request's meaning (response_format read and compiled
once, tool_choice "none" removes the tools), OpenAI-style refusals naming the schema feature,
the grammars the chat formats write, and the echo runtime answering through the openai
client with JSON that validates."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import jsonschema
import openai
import pytest

from llmux.chatformats import get_format
from llmux.errors import InvalidRequest
from llmux.openai.chat import parse_chat_request
from llmux.structured import Target, json_lark, target_for
from llmux.structured.walk import example
from llmux.types import PhysicalModel, ResponseFormat, VirtualModel

from ..conftest import DEMO_KEY
from llmux.structured.conformance import SCHEMAS, TOOL_SCHEMAS, TOOLS, response_format

VIRTUAL = VirtualModel("v", PhysicalModel("p", "llm", "echo", "p", Path("."), tools=True))
USER = [{"role": "user", "content": "hi"}]


def parse(**body):
    return parse_chat_request({"messages": USER, **body}, VIRTUAL)


def refusal(**body) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse(**body)
    return caught.value


# --------------------------------------------------------------------------- the request


def test_tool_choice_none_removes_the_tools():
    request = parse(tools=TOOLS, tool_choice="none")
    assert request.tools is None and request.tool_choice == "none"
    assert target_for(request) is None


def test_response_format_is_read():
    assert parse(response_format={"type": "text"}).response_format is None
    assert parse(response_format={"type": "json_object"}).response_format == \
        ResponseFormat("json_object")
    fmt = parse(response_format=response_format("flat")).response_format
    assert (fmt.type, fmt.name, fmt.schema, fmt.strict) == (
        "json_schema", "flat", SCHEMAS["flat"], True)


@pytest.mark.parametrize("value, param, text", [
    ({"type": "xml"}, "response_format", "'response_format' must be"),
    ({"type": "json_schema"}, "response_format.json_schema", "must be an object"),
    ({"type": "json_schema", "json_schema": {"schema": {}}}, "response_format.json_schema.name",
     "'response_format.json_schema.name' is required"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": []}},
     "response_format.json_schema.schema", "must be a JSON Schema object"),
    ({"type": "json_schema", "json_schema": {"name": "x", "strict": "yes"}},
     "response_format.json_schema.strict", "must be a boolean"),
])
def test_malformed_response_format(value, param, text):
    error = refusal(response_format=value)
    assert error.param == param and text in error.message


@pytest.mark.parametrize("schema, feature", [
    ({"type": "array", "uniqueItems": True}, 'Unimplemented keys: ["uniqueItems"]'),
    ({"type": "object", "not": {"required": ["a"]}}, 'Unimplemented keys: ["not"]'),
    ({"type": "string", "format": "hostname-ish"}, "Unknown format: hostname-ish"),
    ({"type": "string", "pattern": "(?=a)b"}, "look-around"),
    ({"$ref": "https://example.com/schema.json"}, "https://example.com/schema.json"),
])
def test_an_unenforceable_schema_is_refused_by_name(schema, feature):
    error = refusal(response_format={"type": "json_schema",
                                     "json_schema": {"name": "x", "schema": schema}})
    assert error.param == "response_format.json_schema.schema"
    assert error.code == "invalid_schema"
    assert feature in error.message and "strict: false" in error.message


def test_strict_false_is_best_effort_and_logged(caplog):
    caplog.set_level(logging.WARNING, logger="llmux.structured")
    schema = {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}}
    request = parse(response_format={"type": "json_schema", "json_schema": {
        "name": "x", "schema": schema, "strict": False}})
    assert request.response_format.strict is False
    assert "uniqueItems" in caplog.text and "strict: false" in caplog.text


def test_a_forced_tool_schema_is_checked_too():
    tools = [{"type": "function", "function": {"name": "f", "strict": True, "parameters": {
        "type": "object", "properties": {"a": {"type": "array", "uniqueItems": True}}}}}]
    error = refusal(tools=tools, tool_choice="required")
    assert error.param == "tools[0].function.parameters" and "uniqueItems" in error.message
    parse(tools=tools)  # not constrained: the model calls as it likes
    tools[0]["function"]["strict"] = False
    parse(tools=tools, tool_choice="required")  # best effort


# --------------------------------------------------------------------------- the grammars


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_every_schema_has_a_valid_shortest_answer(name):
    jsonschema.validate(json.loads(example(json_lark(SCHEMAS[name]))), SCHEMAS[name])


@pytest.mark.parametrize("fmt", ["qwen3_5", "gpt_oss"])
@pytest.mark.parametrize("choice", ["required", "named", "answer"])
@pytest.mark.parametrize("specials", [True, False])
def test_format_grammars_compile(fmt, choice, specials):
    from llguidance import LLMatcher

    tool_choice = {"required": "required", "answer": "auto",
                   "named": {"type": "function", "function": {"name": "add_items"}}}[choice]
    request = parse(tools=TOOLS, tool_choice=tool_choice,
                    response_format=response_format("nested") if choice == "answer" else None)
    chat_format = get_format(fmt)
    tags = frozenset(chat_format.grammar_tags if specials else ())
    for thinking in (True, False):
        grammar = chat_format.grammar(target_for(request), thinking=thinking, specials=tags)
        text = LLMatcher.grammar_from_lark(grammar)
        # special tokens need a vocabulary: without one only the plain-text form validates
        if not specials:
            assert LLMatcher.validate_grammar(text) == "", grammar


def test_plain_format_cannot_call():
    with pytest.raises(ValueError, match="no tool-call syntax"):
        get_format("plain").grammar(Target(None, ()), thinking=False)


# --------------------------------------------------------------------------- echo


@pytest.fixture
async def client(demo_server):
    async with openai.AsyncOpenAI(base_url=demo_server + "/v1", api_key=DEMO_KEY,
                                  max_retries=0) as c:
        yield c


@pytest.mark.parametrize("name", ["nested", "pattern", "one_of", "refs"])
async def test_echo_answers_in_the_schema(client, name):
    response = await client.chat.completions.create(
        model="qwen3.5-4b-instruct", messages=USER, response_format=response_format(name))
    jsonschema.validate(json.loads(response.choices[0].message.content), SCHEMAS[name])


async def test_echo_parse_with_a_pydantic_model(client):
    from pydantic import BaseModel, Field

    class Point(BaseModel):
        x: int = Field(ge=3, le=9)
        label: str = Field(pattern="^[A-Z]{2}$")

    completion = await client.chat.completions.parse(
        model="qwen3.5-4b-instruct", messages=USER, response_format=Point)
    assert completion.choices[0].message.parsed == Point(x=3, label="AA")


@pytest.mark.parametrize("choice", ["required", "add_items"])
async def test_echo_forced_call_follows_the_tool_schema(client, choice):
    tool_choice = choice if choice == "required" else {
        "type": "function", "function": {"name": choice}}
    response = await client.chat.completions.create(
        model="qwen3.5-4b-instruct", messages=USER, tools=TOOLS, tool_choice=tool_choice)
    choice_ = response.choices[0]
    assert choice_.finish_reason == "tool_calls"
    call = choice_.message.tool_calls[0].function
    jsonschema.validate(json.loads(call.arguments), TOOL_SCHEMAS[call.name])


async def test_an_unenforceable_schema_is_a_400_over_http(client):
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model="qwen3.5-4b-instruct", messages=USER, response_format={
                "type": "json_schema", "json_schema": {"name": "x", "schema": {
                    "type": "array", "uniqueItems": True}}})
    assert caught.value.body["param"] == "response_format.json_schema.schema"
    assert "uniqueItems" in caught.value.body["message"]


def test_parallel_tool_calls_false_allows_one_call():
    assert target_for(parse(tools=TOOLS, tool_choice="required")).parallel
    request = parse(tools=TOOLS, tool_choice="required", parallel_tool_calls=False)
    assert not target_for(request).parallel
    grammar = get_format("qwen3_5").grammar(target_for(request), thinking=False)
    assert "calls: call\n" in grammar
    assert refusal(parallel_tool_calls="no").param == "parallel_tool_calls"
