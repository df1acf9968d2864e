"""Property: however the same output is chunked, the parser gives the same events.

Outputs are built from the formats' own tags, tag fragments, whitespace, multi-byte
characters and arbitrary text, then cut at arbitrary points (empty chunks included).
"""

from __future__ import annotations

import json

from chatformat_support import calls_of, merge, parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

QWEN_TOOLS = [{
    "type": "function",
    "function": {
        "name": "f",
        "parameters": {"type": "object", "properties": {
            "s": {"type": "string"}, "i": {"type": "integer"}, "o": {"type": "object"},
            "b": {"type": "boolean"},
        }},
    },
}]
GPT_TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {}}}]

QWEN_PIECES = [
    "<think>", "</think>", "<tool_call>", "</tool_call>", "<function=f>", "<function=g>",
    "<function=", "</function>", "<parameter=s>", "<parameter=i>", "<parameter=o>",
    "<parameter=b>", "<parameter=", "</parameter>", "<|im_end|>", "<tool_", "</thi", "<", ">",
    "\n", "\n\n", " ", "ü😀", "42", "true", "null", '{"k": [1]}', "Paris", "</",
]
GPT_PIECES = [
    "<|start|>", "assistant", "<|channel|>", "analysis", "final", "commentary",
    " to=functions.f", " to=functions.g", " <|constrain|>", "json", " json", "<|message|>",
    "<|end|>", "<|return|>", "<|call|>", "<|endoftext|>", "<|", "|>", "<|chan", "<", "\n",
    " ", "ü😀", '{"a": 1}', "{", "Hello", "to=",
]


def outputs(pieces: list[str]) -> st.SearchStrategy[str]:
    piece = st.one_of(st.sampled_from(pieces), st.text(max_size=4))
    return st.lists(piece, max_size=30).map("".join)


@st.composite
def chunked(draw, pieces):
    text = draw(outputs(pieces))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=12)))
    bounds = [0, *cuts, len(text)]
    return text, [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=chunked(QWEN_PIECES), thinking=st.booleans(), tools=st.booleans(),
       reason=st.sampled_from(["stop", "length"]))
def test_qwen3_5_any_chunking_same_events(data, thinking, tools, reason):
    text, chunks = data
    kw = {"tools": QWEN_TOOLS if tools else None, "thinking": thinking, "reason": reason}
    whole = merge(parse("qwen3_5", text, **kw))
    assert merge(parse("qwen3_5", chunks, **kw)) == whole
    assert merge(parse("qwen3_5", list(text), **kw)) == whole
    for c in calls_of(whole).values():  # Qwen3.5 arguments are always valid JSON objects
        assert isinstance(json.loads(c["arguments"]), dict)


@SETTINGS
@given(data=chunked(GPT_PIECES), tools=st.booleans(), reason=st.sampled_from(["stop", "length"]))
def test_gpt_oss_any_chunking_same_events(data, tools, reason):
    text, chunks = data
    kw = {"tools": GPT_TOOLS if tools else None, "reason": reason}
    whole = merge(parse("gpt_oss", text, **kw))
    assert merge(parse("gpt_oss", chunks, **kw)) == whole
    assert merge(parse("gpt_oss", list(text), **kw)) == whole
    if whole[-1].detail is None:
        for c in calls_of(whole).values():
            assert isinstance(json.loads(c["arguments"]), dict)


@SETTINGS
@given(data=chunked(QWEN_PIECES + GPT_PIECES))
def test_plain_any_chunking_same_events(data):
    text, chunks = data
    expected = merge(parse("plain", text))
    assert merge(parse("plain", chunks)) == expected
    assert "".join(e.text for e in expected[:-1]) == text
