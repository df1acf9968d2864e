"""prepare_messages and template_kwargs: OpenAI history -> what each template reads."""

from __future__ import annotations

import copy
import json

import pytest

from llmux.chatformats import get_format
from llmux.chatformats.messages import split_think
from llmux.types import Behaviour

CALL = {"id": "c1", "type": "function",
        "function": {"name": "f", "arguments": json.dumps({"x": 1, "y": [True]})}}
HISTORY = [
    {"role": "system", "content": "Sys."},
    {"role": "user", "content": [{"type": "text", "text": "Hi"},
                                 {"type": "image_url", "image_url": {"url": "data:,"}}]},
    {"role": "assistant", "content": "<think>\nr1\n</think>\n\nAnswer.", "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "c1", "content": "ok"},
]


@pytest.mark.parametrize("fmt", ["qwen3_5", "gpt_oss", "plain"])
def test_input_is_never_mutated(fmt):
    messages = copy.deepcopy(HISTORY)
    get_format(fmt).prepare_messages(messages, Behaviour(system_prompt_prefix="P"))
    assert messages == HISTORY


def test_qwen_messages():
    out = get_format("qwen3_5").prepare_messages(HISTORY, Behaviour())
    assert out[0] == {"role": "system", "content": "Sys."}
    assert out[1] == HISTORY[1]  # content parts (and images) kept as parts
    assert out[2] == {
        "role": "assistant", "content": "Answer.", "reasoning_content": "r1",
        "tool_calls": [{"id": "c1", "type": "function",
                        "function": {"name": "f", "arguments": {"x": 1, "y": [True]}}}],
    }


def test_qwen_reasoning_fields_and_developer_role():
    messages = [
        {"role": "developer", "content": "Dev."},
        {"role": "system", "content": "Sys."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": None, "reasoning": "via reasoning"},
        {"role": "assistant", "content": "x", "thinking": "via thinking"},
        {"role": "assistant", "content": "<think>a</think>b", "reasoning_content": "explicit"},
    ]
    out = get_format("qwen3_5").prepare_messages(messages, Behaviour())
    assert out == [
        {"role": "system", "content": "Dev.\n\nSys."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "", "reasoning_content": "via reasoning"},
        {"role": "assistant", "content": "x", "reasoning_content": "via thinking"},
        {"role": "assistant", "content": "b", "reasoning_content": "explicit"},
    ]


def test_gpt_oss_messages():
    out = get_format("gpt_oss").prepare_messages(HISTORY, Behaviour())
    assert out[2] == {  # analysis and a preamble cannot both go on a call turn
        "role": "assistant", "content": "", "thinking": "r1\n\nAnswer.",
        "tool_calls": [{"id": "c1", "type": "function",
                        "function": {"name": "f", "arguments": {"x": 1, "y": [True]}}}],
    }
    assert out[3] == {"role": "tool", "tool_call_id": "c1", "content": "ok"}
    text_only = [{"role": "user", "content": [{"type": "text", "text": "a"},
                                              {"type": "text", "text": "b"}]}]
    assert get_format("gpt_oss").prepare_messages(text_only, Behaviour()) == [
        {"role": "user", "content": "a\nb"}]


def test_gpt_oss_splits_parallel_calls_and_orders_results():
    calls = [{"id": i, "type": "function", "function": {"name": i, "arguments": "{}"}}
             for i in ("a", "b")]
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "reasoning_content": "r", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "b", "content": "B"},
        {"role": "tool", "tool_call_id": "zzz", "content": "?"},
        {"role": "tool", "tool_call_id": "a", "content": "A"},
    ]
    out = get_format("gpt_oss").prepare_messages(messages, Behaviour())
    assert [(m["role"], m.get("content"), [c["id"] for c in m.get("tool_calls", [])])
            for m in out] == [
        ("user", "go", []), ("assistant", "", ["a"]), ("tool", "A", []),
        ("assistant", "", ["b"]), ("tool", "B", []), ("tool", "?", []),
    ]
    assert out[1]["thinking"] == "r" and "thinking" not in out[3]


@pytest.mark.parametrize("fmt", ["qwen3_5", "gpt_oss", "plain"])
def test_system_prompt_prefix(fmt):
    f = get_format(fmt)
    user = {"role": "user", "content": "Hi"}
    assert f.prepare_messages([user], Behaviour(system_prompt_prefix="P.")) == [
        {"role": "system", "content": "P."}, user]
    assert f.prepare_messages([{"role": "system", "content": "S."}, user],
                              Behaviour(system_prompt_prefix="P.")) == [
        {"role": "system", "content": "P.\n\nS."}, user]
    assert f.prepare_messages([user], Behaviour()) == [user]


def test_arguments_that_are_not_an_object_are_left_alone():
    bad = {"role": "assistant", "content": "", "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{oops"}},
        {"id": "2", "type": "function", "function": {"name": "f", "arguments": ""}}]}
    out = get_format("qwen3_5").prepare_messages([bad], Behaviour())
    assert [c["function"]["arguments"] for c in out[0]["tool_calls"]] == ["{oops", {}]


@pytest.mark.parametrize("content,expected", [
    ("<think>\nr\n</think>\n\nanswer", ("r", "answer")),
    ("r\n</think>\n\nanswer", ("r", "answer")),
    ("<think>a</think>x<think>b</think>y", ("a\n\nb", "xy")),
    ("<think></think>answer", (None, "answer")),
])
def test_split_think(content, expected):
    assert split_think(content) == expected


def test_template_kwargs():
    qwen, gpt = get_format("qwen3_5"), get_format("gpt_oss")
    assert qwen.template_kwargs(Behaviour()) == {"enable_thinking": True}
    assert qwen.template_kwargs(Behaviour(thinking=False)) == {"enable_thinking": False}
    assert gpt.template_kwargs(Behaviour()) == {"reasoning_effort": "medium"}
    assert gpt.template_kwargs(Behaviour(reasoning_effort="HIGH")) == {"reasoning_effort": "high"}
    assert gpt.template_kwargs(Behaviour(thinking=False)) == {"reasoning_effort": "low"}
    with pytest.raises(ValueError, match="'max' is not one of low, medium, high"):
        gpt.template_kwargs(Behaviour(reasoning_effort="max"))
    assert get_format("plain").template_kwargs(Behaviour(thinking=True)) == {}
