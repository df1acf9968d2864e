"""gpt-oss (harmony) output -> events, from outputs written in the real format."""

from __future__ import annotations

import pytest
from chatformat_support import C, R, call, merge, parse

from llmux.chatformats import get_format
from llmux.types import Finish

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}]
ANALYSIS = "<|channel|>analysis<|message|>Need the weather.<|end|>"
CALL_IN_CHANNEL = ('<|start|>assistant<|channel|>commentary to=functions.get_weather '
                   '<|constrain|>json<|message|>{"city":"Paris"}<|call|>')
CALL_IN_ROLE = ('<|start|>assistant to=functions.get_weather<|channel|>commentary json'
                '<|message|>{"city": "Paris"}<|call|>')

CASES = [
    ("analysis-final",
     "<|channel|>analysis<|message|>User says hi.<|end|>"
     "<|start|>assistant<|channel|>final<|message|>Hello!<|return|>",
     TOOLS, [R("User says hi."), C("Hello!"), Finish("stop")]),
    ("stop-token-stripped",
     "<|channel|>analysis<|message|>User says hi.<|end|>"
     "<|start|>assistant<|channel|>final<|message|>Hello!",
     None, [R("User says hi."), C("Hello!"), Finish("stop")]),
    ("final-only", "<|channel|>final<|message|>42<|return|>", None, [C("42"), Finish("stop")]),
    ("call-recipient-in-channel", ANALYSIS + CALL_IN_CHANNEL, TOOLS,
     [R("Need the weather."), call(0, "get_weather", '{"city":"Paris"}'), Finish("tool_calls")]),
    ("call-recipient-in-role", ANALYSIS + CALL_IN_ROLE, TOOLS,
     [R("Need the weather."), call(0, "get_weather", '{"city": "Paris"}'),
      Finish("tool_calls")]),
    ("call-first-after-generation-prompt",
     ' to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Oslo"}<|call|>',
     TOOLS, [call(0, "get_weather", '{"city": "Oslo"}'), Finish("tool_calls")]),
    ("call-call-token-stripped", ANALYSIS + CALL_IN_CHANNEL.removesuffix("<|call|>"), TOOLS,
     [R("Need the weather."), call(0, "get_weather", '{"city":"Paris"}'), Finish("tool_calls")]),
    ("call-empty-arguments",
     "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|><|call|>", TOOLS,
     [call(0, "get_weather", "{}"), Finish("tool_calls")]),
    ("preamble",
     "<|channel|>analysis<|message|>Plan.<|end|>"
     "<|start|>assistant<|channel|>commentary<|message|>Checking the weather now.<|end|>"
     + CALL_IN_CHANNEL, TOOLS,
     [R("Plan."), C("Checking the weather now."), call(0, "get_weather", '{"city":"Paris"}'),
      Finish("tool_calls")]),
    ("unicode-and-angles",
     "<|channel|>analysis<|message|>ü😀 a<b <|c<|end|>"
     "<|start|>assistant<|channel|>final<|message|>Grüße 😀 <|x|><|return|>", None,
     [R("ü😀 a<b <|c"), C("Grüße 😀 <|x|>"), Finish("stop")]),
    ("newlines-between-messages",
     "<|channel|>analysis<|message|>x<|end|>\n<|start|>assistant<|channel|>final<|message|>y",
     None, [R("x"), C("y"), Finish("stop")]),
    ("after-stop-token-ignored",
     "<|channel|>final<|message|>done<|return|><|start|>assistant<|channel|>final<|message|>more",
     None, [C("done"), Finish("stop")]),
]


@pytest.mark.parametrize("output,tools,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_fixture_whole_and_streamed(output, tools, expected):
    assert merge(parse("gpt_oss", output, tools=tools)) == expected
    assert merge(parse("gpt_oss", list(output), tools=tools)) == expected
    for i in range(len(output) + 1):
        assert merge(parse("gpt_oss", [output[:i], "", output[i:]], tools=tools)) == expected


def test_special_tokens_split_across_chunks():
    parser = get_format("gpt_oss").parser(TOOLS)
    assert parser.feed("<|cha") == []
    assert parser.feed("nnel|>analysis<|mess") == []
    assert parser.feed("age|>Thinking") == [R("Thinking")]
    assert parser.feed(" more<|e") == [R(" more")]
    assert parser.feed("nd|><|start|>assistant<|channel|>final<|message|>Hi") == [C("Hi")]
    assert parser.close() == [Finish("stop")]


def test_arguments_stream_as_generated():
    parser = get_format("gpt_oss").parser(TOOLS)
    head = parser.feed("<|channel|>commentary to=functions.get_weather <|constrain|>json")
    head += parser.feed("<|message|>")
    assert [(e.index, e.name, e.arguments) for e in head] == [(0, "get_weather", "")]
    assert [e.arguments for e in parser.feed('{"city":')] == ['{"city":']
    assert [e.arguments for e in parser.feed(' "Rome"}<|call|>')] == [' "Rome"}']
    assert parser.close() == [Finish("tool_calls")]


def test_stop_sequences():
    fmt = get_format("gpt_oss")
    assert fmt.stop_sequences == ("<|return|>", "<|call|>")
    assert fmt.parser().stop_sequences == fmt.stop_sequences
    assert fmt.needs_special_tokens


# ---------------------------------------------------------------------- malformed output


def test_invalid_json_arguments_pass_as_given():
    output = "<|channel|>commentary to=functions.get_weather json<|message|>{city: Paris}<|call|>"
    events = merge(parse("gpt_oss", output, tools=TOOLS))
    assert events[:-1] == [call(0, "get_weather", "{city: Paris}")]
    assert events[-1].reason == "tool_calls" and "not a JSON object" in events[-1].detail


def test_arguments_cut_off_by_length():
    output = '<|channel|>commentary to=functions.get_weather json<|message|>{"city": "Pa'
    events = merge(parse("gpt_oss", output, tools=TOOLS, reason="length"))
    assert events[:-1] == [call(0, "get_weather", '{"city": "Pa')]
    assert events[-1].reason == "length" and "not a JSON object" in events[-1].detail


def test_unknown_function_passes_as_given():
    output = "<|channel|>commentary to=functions.get_time json<|message|>{}<|call|>"
    events = merge(parse("gpt_oss", output, tools=TOOLS))
    assert events[:-1] == [call(0, "get_time", "{}")]
    assert "unknown function 'get_time'" in events[-1].detail


def test_call_without_tools_in_the_request_is_content():
    output = '<|channel|>commentary to=functions.get_weather json<|message|>{"city": "X"}<|call|>'
    events = merge(parse("gpt_oss", output, tools=None))
    assert events[:-1] == [C('{"city": "X"}')]
    assert events[-1].reason == "stop" and "no tools" in events[-1].detail


def test_text_outside_harmony_is_content():
    events = merge(parse("gpt_oss", "Hello, no channels here.\n", tools=TOOLS))
    assert events[:-1] == [C("Hello, no channels here.\n")]
    assert "outside a harmony message" in events[-1].detail


def test_output_ending_inside_a_header():
    output = "<|channel|>analysis<|message|>x<|end|><|start|>assistant<|chan"
    events = merge(parse("gpt_oss", output, reason="length"))
    assert events == [R("x"), Finish("length", "the output ended inside a message header")]


def test_message_not_closed_before_the_next_header():
    output = "<|channel|>analysis<|message|>x<|channel|>final<|message|>y<|return|>"
    events = merge(parse("gpt_oss", output))
    assert events[:-1] == [R("x"), C("y")]
    assert "not closed with <|end|>" in events[-1].detail
