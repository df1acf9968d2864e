"""Qwen3.5 output -> events, from outputs written in the real format (chat-formats.md)."""

from __future__ import annotations

import json

import pytest
from chatformat_support import C, R, call, calls_of, merge, parse

from llmux.chatformats import get_format
from llmux.types import Finish

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
EVERYTHING = {
    "type": "function",
    "function": {
        "name": "everything",
        "parameters": {
            "type": "object",
            "properties": {
                "s": {"type": "string"},
                "i": {"type": "integer"},
                "n": {"type": "number"},
                "f": {"type": "number"},
                "b": {"type": "boolean"},
                "o": {"type": "object"},
                "a": {"type": "array", "items": {"type": "string"}},
                "z": {"type": ["integer", "null"]},
                "u": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                "e": {"type": "string", "enum": ["fast", "slow"]},
            },
        },
    },
}
TOOLS = [WEATHER, EVERYTHING]


def xml_call(name: str, **params: str) -> str:
    body = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in params.items())
    return f"<tool_call>\n<function={name}>\n{body}</function>\n</tool_call>"


PARIS = xml_call("get_weather", city="Paris", days="3")
BERLIN = xml_call("get_weather", city="Berlin")

# (id, output, thinking, tools, expected merged events)
CASES = [
    ("thinking-content", "The user greets me.\n</think>\n\nHello! How can I help?", True, TOOLS,
     [R("The user greets me."), C("Hello! How can I help?"), Finish("stop")]),
    ("thinking-multiline", "Step 1.\n\nStep 2.\n</think>\n\nLine 1\n\nLine 2", True, None,
     [R("Step 1.\n\nStep 2."), C("Line 1\n\nLine 2"), Finish("stop")]),
    ("no-thinking", "Hello there.", False, TOOLS, [C("Hello there."), Finish("stop")]),
    ("no-thinking-ignores-think-tag", "a </think> b", False, None,
     [C("a </think> b"), Finish("stop")]),
    ("model-opens-think", "<think>\nHmm.\n</think>\n\nOK.", False, None,
     [R("Hmm."), C("OK."), Finish("stop")]),
    ("reasoning-only", "Still thinking when it stopped", True, None,
     [R("Still thinking when it stopped"), Finish("stop")]),
    ("im-end", "Hi.\n</think>\n\nBye.<|im_end|>ignored", True, None,
     [R("Hi."), C("Bye."), Finish("stop")]),
    ("one-call", "I need the weather.\n</think>\n\n" + PARIS, True, TOOLS,
     [R("I need the weather."), call(0, "get_weather", '{"city": "Paris", "days": 3}'),
      Finish("tool_calls")]),
    ("content-then-two-calls",
     "Two cities.\n</think>\n\nLet me check both.\n\n" + PARIS + "\n" + BERLIN + "\n", True, TOOLS,
     [R("Two cities."), C("Let me check both."),
      call(0, "get_weather", '{"city": "Paris", "days": 3}'),
      call(1, "get_weather", '{"city": "Berlin"}'), Finish("tool_calls")]),
    ("call-inside-reasoning", "I should look it up.\n\n" + BERLIN, True, TOOLS,
     [R("I should look it up."), call(0, "get_weather", '{"city": "Berlin"}'),
      Finish("tool_calls")]),
    ("call-without-thinking", PARIS + "<|im_end|>", False, TOOLS,
     [call(0, "get_weather", '{"city": "Paris", "days": 3}'), Finish("tool_calls")]),
    ("call-no-params", "<tool_call>\n<function=get_weather>\n</function>\n</tool_call>", False,
     TOOLS, [call(0, "get_weather", "{}"), Finish("tool_calls")]),
    ("tool-call-tag-in-reasoning", "Maybe <tool_call> tags?\n</think>\n\nNo.", True, TOOLS,
     [R("Maybe <tool_call> tags?"), C("No."), Finish("stop")]),
    ("no-tools-no-calls", "</think>\n\n" + BERLIN, True, None, [C(BERLIN), Finish("stop")]),
    ("text-after-calls", PARIS + "\n\nDone.\n", False, TOOLS,
     [call(0, "get_weather", '{"city": "Paris", "days": 3}'), C("Done."), Finish("tool_calls")]),
    ("missing-close-tags",
     "<tool_call>\n<function=get_weather>\n<parameter=city>\nRome\n<parameter=days>\n2\n"
     "</function>",
     False, TOOLS, [call(0, "get_weather", '{"city": "Rome", "days": 2}'), Finish("tool_calls")]),
    ("unicode", "Grüße 😀\n</think>\n\nÜber 😀 <b>", True, TOOLS,
     [R("Grüße 😀"), C("Über 😀 <b>"), Finish("stop")]),
]


@pytest.mark.parametrize("output,thinking,tools,expected",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_fixture_whole_and_streamed(output, thinking, tools, expected):
    assert merge(parse("qwen3_5", output, tools=tools, thinking=thinking)) == expected
    by_char = parse("qwen3_5", list(output), tools=tools, thinking=thinking)
    assert merge(by_char) == expected
    for i in range(len(output) + 1):  # every split point, with an empty feed between
        chunks = [output[:i], "", output[i:]]
        assert merge(parse("qwen3_5", chunks, tools=tools, thinking=thinking)) == expected


def test_every_json_type_of_a_parameter():
    output = xml_call(
        "everything", s="\nline one\nline two\n", i="-42", n="2.5", f="7", b="true",
        o='{"k": [1, 2], "t": "x"}', a='["x", "y"]', z="null", u="12", e="fast",
    )
    events = merge(parse("qwen3_5", output, tools=TOOLS, thinking=False))
    assert events[-1] == Finish("tool_calls")
    args = json.loads(calls_of(events)[0]["arguments"])
    assert args == {
        "s": "\nline one\nline two\n", "i": -42, "n": 2.5, "f": 7, "b": True,
        "o": {"k": [1, 2], "t": "x"}, "a": ["x", "y"], "z": None, "u": 12, "e": "fast",
    }
    assert type(args["f"]) is int and type(args["n"]) is float


def test_history_rendering_of_python_values_parses_back():
    # The template renders dict arguments with `|string`: True -> "True", 3.0 -> "3.0".
    output = xml_call("everything", b="True", i="3.0", s="True")
    events = parse("qwen3_5", output, tools=TOOLS, thinking=False)
    args = json.loads(calls_of(events)[0]["arguments"])
    assert args == {"b": True, "i": 3, "s": "True"}


def test_arguments_stream_one_fragment_per_parameter():
    parser = get_format("qwen3_5").parser(TOOLS, thinking=False)
    head = parser.feed("<tool_call>\n<function=get_weather>\n")
    assert [(e.index, e.name, e.arguments) for e in head] == [(0, "get_weather", "")]
    first = parser.feed("<parameter=city>\nParis\n</parameter>\n")
    assert [(e.index, e.id, e.arguments) for e in first] == [(0, None, '{"city": "Paris"')]
    second = parser.feed("<parameter=days>\n3\n</parameter>\n")
    assert [e.arguments for e in second] == [', "days": 3']
    assert [e.arguments for e in parser.feed("</function>\n</tool_call>")] == ["}"]
    assert parser.close() == [Finish("tool_calls")]


def test_text_is_emitted_at_once_and_only_tag_prefixes_wait():
    parser = get_format("qwen3_5").parser(TOOLS, thinking=True)
    assert parser.feed("Thinking hard") == [R("Thinking hard")]
    assert parser.feed(" now.\n</th") == [R(" now.")]  # "\n</th" may end the reasoning
    assert parser.feed("ink>\n\nAnswer <") == [C("Answer ")]  # "<" may start <tool_call>
    assert parser.feed("b> done") == [C("<b> done")]
    assert parser.close() == [Finish("stop")]


def test_buffer_stays_small_on_long_output():
    parser = get_format("qwen3_5").parser(TOOLS, thinking=True)
    chunks = ["word <x> \n"] * 2000 + ["</think>\n\n", "<tool_call>\n<function=everything>\n",
                                        "<parameter=s>\n"] + ["more <text>\n"] * 2000
    events = []
    for chunk in chunks:
        events += parser.feed(chunk)
        assert len(parser._buf) <= len("</parameter>")
    events += parser.feed("</parameter>\n</function>\n</tool_call>") + parser.close()
    value = "more <text>\n" * 1999 + "more <text>"
    assert json.loads(calls_of(events)[0]["arguments"]) == {"s": value}
    assert events[-1] == Finish("tool_calls")


# ---------------------------------------------------------------------- malformed output


def finish(events):
    assert isinstance(events[-1], Finish)
    return events[-1]


def test_unterminated_call_comes_back_as_content():
    output = "Sure.\n\n<tool_call>\n<function=get_weather"
    events = merge(parse("qwen3_5", output, tools=TOOLS, thinking=False))
    assert events[:-1] == [C(output)]
    assert events[-1].reason == "stop" and "malformed <function=" in events[-1].detail


def test_tool_call_tag_without_function_in_content():
    output = '<tool_call>\n{"name": "get_weather", "arguments": {}}\n</tool_call>'
    events = merge(parse("qwen3_5", output, tools=TOOLS, thinking=False))
    assert events[:-1] == [C(output)]
    assert "without <function=" in events[-1].detail


def test_call_cut_off_by_length_is_closed_as_valid_json():
    output = "<tool_call>\n<function=get_weather>\n<parameter=city>\nPar"
    events = merge(parse("qwen3_5", output, tools=TOOLS, thinking=False, reason="length"))
    assert events[:-1] == [call(0, "get_weather", '{"city": "Par"}')]
    assert events[-1].reason == "length" and "cut off" in events[-1].detail


def test_unknown_function_is_passed_as_given_with_string_values():
    output = xml_call("get_time", tz="UTC", offset="2")
    events = merge(parse("qwen3_5", output, tools=TOOLS, thinking=False))
    assert events[:-1] == [call(0, "get_time", '{"tz": "UTC", "offset": "2"}')]
    assert events[-1].reason == "tool_calls" and "unknown function 'get_time'" in events[-1].detail


def test_value_of_the_wrong_type_stays_a_string():
    output = xml_call("get_weather", city="Paris", days="three")
    events = merge(parse("qwen3_5", output, tools=TOOLS, thinking=False))
    assert json.loads(calls_of(events)[0]["arguments"]) == {"city": "Paris", "days": "three"}
    assert "'three' is not of type integer" in events[-1].detail


def test_cancelled_keeps_its_reason():
    events = parse("qwen3_5", "Hmm", tools=TOOLS, thinking=True, reason="cancelled")
    assert events == [R("Hmm"), Finish("cancelled")]


def test_malformed_output_is_logged_once(caplog):
    output = xml_call("nope", a="1") + xml_call("nope", a="2")
    with caplog.at_level("WARNING", logger="llmux.chatformats"):
        parse("qwen3_5", list(output), tools=TOOLS, thinking=False)
    assert len(caplog.records) == 1 and "unknown function 'nope'" in caplog.records[0].message


def test_feed_after_close_is_an_error():
    parser = get_format("qwen3_5").parser()
    parser.close()
    with pytest.raises(RuntimeError):
        parser.feed("x")
