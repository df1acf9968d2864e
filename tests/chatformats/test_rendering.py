"""History rendering: prepare_messages + the test templates give the real prompts exactly."""

from __future__ import annotations

import json

import pytest
from chatformat_support import parse, render, to_message

from llmux.chatformats import get_format
from llmux.types import Behaviour

pytest.importorskip("jinja2")

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "days": {"type": "integer", "default": 1},
            },
            "required": ["city"],
        },
    },
}
QWEN_TOOLS_BLOCK = (
    "<|im_start|>system\n# Tools\n\nYou have access to the following functions:\n\n<tools>\n"
    + json.dumps(WEATHER, ensure_ascii=False)
    + "\n</tools>\n\nIf you choose to call a function ONLY reply in the following format with NO"
    " suffix:\n\n<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>"
    "\nvalue_1\n</parameter>\n<parameter=example_parameter_2>\nThis is the value for the second"
    " parameter\nthat can span\nmultiple lines\n</parameter>\n</function>\n</tool_call>\n\n"
    "<IMPORTANT>\nReminder:\n- Function calls MUST follow the specified format: an inner"
    " <function=...></function> block must be nested within <tool_call></tool_call> XML tags\n"
    "- Required parameters MUST be specified\n- You may provide optional reasoning for your"
    " function call in natural language BEFORE the function call, but NOT after\n- If there is"
    " no function call available, answer the question like normal with your current knowledge"
    " and do not tell the user about function calls\n</IMPORTANT>"
)


def tool_call(call_id, name, arguments):
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)}}


def prompt(fmt_name, messages, behaviour=None, tools=None, **kw):
    behaviour = behaviour or Behaviour()
    fmt = get_format(fmt_name)
    prepared = fmt.prepare_messages(messages, behaviour)
    return render(fmt_name, prepared, tools=tools, **fmt.template_kwargs(behaviour), **kw)


# ---------------------------------------------------------------------- Qwen3.5


@pytest.mark.parametrize("thinking,tail", [
    (None, "<|im_start|>assistant\n<think>\n"),
    (True, "<|im_start|>assistant\n<think>\n"),
    (False, "<|im_start|>assistant\n<think>\n\n</think>\n\n"),
])
def test_qwen_generation_prompt(thinking, tail):
    text = prompt("qwen3_5", [{"role": "user", "content": "Hi"}], Behaviour(thinking=thinking))
    assert text == "<|im_start|>user\nHi<|im_end|>\n" + tail


def test_qwen_agent_turn_keeps_reasoning_after_the_last_query():
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "reasoning_content": "The user wants weather.",
         "tool_calls": [tool_call("call_1", "get_weather", {"city": "Paris", "days": 2})]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18°C, sunny"},
    ]
    assert prompt("qwen3_5", messages, tools=[WEATHER]) == (
        QWEN_TOOLS_BLOCK + "\n\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nThe user wants weather.\n</think>\n\n"
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
        "<parameter=days>\n2\n</parameter>\n</function>\n</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n18°C, sunny\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n<think>\n"
    )


def test_qwen_multi_turn_with_parallel_calls_and_earlier_reasoning():
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris and Berlin?"},
        {"role": "assistant", "content": "", "reasoning_content": "Two cities.",
         "tool_calls": [tool_call("c1", "get_weather", {"city": "Paris"}),
                        tool_call("c2", "get_weather", {"city": "Berlin"})]},
        {"role": "tool", "tool_call_id": "c1", "content": "18°C"},
        {"role": "tool", "tool_call_id": "c2", "content": "12°C"},
        # Open WebUI puts the reasoning back into the content as <think> text.
        {"role": "assistant", "content": "<think>\nParis is warmer.\n</think>\nParis: 18°C."},
        {"role": "user", "content": "Thanks!"},
    ]
    text = prompt("qwen3_5", messages, Behaviour(thinking=False, system_prompt_prefix="P."),
                  tools=[WEATHER])
    assert text == (
        QWEN_TOOLS_BLOCK + "\n\nP.\n\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nWeather in Paris and Berlin?<|im_end|>\n"
        "<|im_start|>assistant\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n"
        "</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=get_weather>\n"
        "<parameter=city>\nBerlin\n</parameter>\n</function>\n</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n18°C\n</tool_response>\n<tool_response>\n12°C\n"
        "</tool_response><|im_end|>\n"
        "<|im_start|>assistant\nParis: 18°C.<|im_end|>\n"
        "<|im_start|>user\nThanks!<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )


def test_qwen_output_parsed_and_sent_back_renders_as_generated():
    tools = [WEATHER]
    history = [{"role": "user", "content": "Weather in Paris?"}]
    before = prompt("qwen3_5", history, tools=tools)
    output = ("The user wants weather.\n</think>\n\n<tool_call>\n<function=get_weather>\n"
              "<parameter=city>\nParis\n</parameter>\n<parameter=days>\n2\n</parameter>\n"
              "</function>\n</tool_call>")
    message = to_message(parse("qwen3_5", list(output), tools=tools))
    after = prompt("qwen3_5", history + [message], tools=tools, add_generation_prompt=False)
    assert after == before + output + "<|im_end|>\n"


def test_qwen_images_stay_parts_and_render_as_vision_tokens():
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is "}, image]}]
    prepared = get_format("qwen3_5").prepare_messages(messages, Behaviour())
    assert prepared[0]["content"][1] == image
    assert render("qwen3_5", prepared) == (
        "<|im_start|>user\nWhat is <|vision_start|><|image_pad|><|vision_end|><|im_end|>\n"
        "<|im_start|>assistant\n<think>\n"
    )


@pytest.mark.parametrize("messages,error", [
    ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}],
     "System message must be at the beginning."),
    ([{"role": "system", "content": "b"}], "No user query found in messages."),
    ([{"role": "critic", "content": "b"}, {"role": "user", "content": "a"}],
     "Unexpected message role."),
])
def test_qwen_template_errors(messages, error):
    import jinja2

    with pytest.raises(jinja2.TemplateError, match=error):
        render("qwen3_5", messages)


# ---------------------------------------------------------------------- gpt-oss

GPT_SYSTEM = (
    "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
    "Knowledge cutoff: 2024-06\nCurrent date: 2026-11-20\n\nReasoning: {effort}\n\n"
    "# Valid channels: analysis, commentary, final. Channel must be included for every message."
)
GPT_TOOLS_NOTE = "\nCalls to these tools must go to the commentary channel: 'functions'."
GPT_NAMESPACE = (  # "default: 1," with its trailing comma, as the real template writes it
    "# Tools\n\n## functions\n\nnamespace functions {\n\n// Get the current weather\n"
    "type get_weather = (_: {\n// City name\ncity: string,\ndays?: number, // default: 1,\n"
    "}) => any;\n\n} // namespace functions"
)


@pytest.mark.parametrize("behaviour,effort", [
    (Behaviour(), "medium"),
    (Behaviour(reasoning_effort="high"), "high"),
    (Behaviour(reasoning_effort="low"), "low"),
    (Behaviour(thinking=False), "low"),
])
def test_gpt_oss_one_reasoning_line_and_generation_prompt(behaviour, effort):
    text = prompt("gpt_oss", [{"role": "user", "content": "Hi"}], behaviour)
    assert text == (GPT_SYSTEM.format(effort=effort) + "<|end|>"
                    "<|start|>user<|message|>Hi<|end|><|start|>assistant")
    assert text.count("Reasoning:") == 1


def test_gpt_oss_prefix_goes_to_the_developer_message_not_the_reasoning_line():
    behaviour = Behaviour(reasoning_effort="high", system_prompt_prefix="Answer in French.")
    text = prompt("gpt_oss", [{"role": "system", "content": "Be brief."},
                              {"role": "user", "content": "Hi"}], behaviour)
    assert text == (
        GPT_SYSTEM.format(effort="high") + "<|end|>"
        "<|start|>developer<|message|># Instructions\n\nAnswer in French.\n\nBe brief.\n\n<|end|>"
        "<|start|>user<|message|>Hi<|end|><|start|>assistant"
    )
    reasoning_lines = [line for line in text.split("\n") if line.startswith("Reasoning")]
    assert reasoning_lines == ["Reasoning: high"]


def test_gpt_oss_agent_turn_renders_thinking_call_and_result():
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "reasoning_content": "Need the weather tool.",
         "tool_calls": [tool_call("call_1", "get_weather", {"city": "Paris"})]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18°C, sunny"},
    ]
    text = prompt("gpt_oss", messages, Behaviour(reasoning_effort="high"), tools=[WEATHER])
    assert text == (
        GPT_SYSTEM.format(effort="high") + GPT_TOOLS_NOTE + "<|end|>"
        "<|start|>developer<|message|># Instructions\n\nYou are terse.\n\n" + GPT_NAMESPACE
        + "<|end|><|start|>user<|message|>Weather in Paris?<|end|>"
        "<|start|>assistant<|channel|>analysis<|message|>Need the weather tool.<|end|>"
        '<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>'
        '{"city": "Paris"}<|call|>'
        '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>'
        '"18°C, sunny"<|end|><|start|>assistant'
    )


def test_gpt_oss_multi_turn_drops_earlier_reasoning_and_think_tags():
    messages = [
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {"role": "assistant", "content": "Checking.", "reasoning_content": "Two calls.",
         "tool_calls": [tool_call("c1", "get_weather", {"city": "Paris"}),
                        tool_call("c2", "get_weather", {"city": "Oslo"})]},
        {"role": "tool", "tool_call_id": "c2", "content": "2°C"},
        {"role": "tool", "tool_call_id": "c1", "content": "18°C"},
        {"role": "assistant", "content": "<think>\nParis is warmer.\n</think>\nParis: 18°C."},
        {"role": "user", "content": [{"type": "text", "text": "Thanks!"}]},
    ]
    text = prompt("gpt_oss", messages, tools=[WEATHER])
    assert text == (
        GPT_SYSTEM.format(effort="medium") + GPT_TOOLS_NOTE + "<|end|>"
        "<|start|>developer<|message|>" + GPT_NAMESPACE + "<|end|>"
        "<|start|>user<|message|>Weather in Paris and Oslo?<|end|>"
        '<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>'
        '{"city": "Paris"}<|call|>'
        '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>"18°C"<|end|>'
        '<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>'
        '{"city": "Oslo"}<|call|>'
        '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>"2°C"<|end|>'
        "<|start|>assistant<|channel|>final<|message|>Paris: 18°C.<|end|>"
        "<|start|>user<|message|>Thanks!<|end|><|start|>assistant"
    )


def test_gpt_oss_output_parsed_and_sent_back():
    output = ("<|channel|>analysis<|message|>Need the weather tool.<|end|>"
              "<|start|>assistant<|channel|>commentary to=functions.get_weather "
              '<|constrain|>json<|message|>{"city": "Paris"}<|call|>')
    message = to_message(parse("gpt_oss", list(output), tools=[WEATHER]))
    history = [{"role": "user", "content": "Weather in Paris?"}, message,
               {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "18"}]
    assert prompt("gpt_oss", history, tools=[WEATHER]).endswith(
        "<|start|>user<|message|>Weather in Paris?<|end|>"
        "<|start|>assistant<|channel|>analysis<|message|>Need the weather tool.<|end|>"
        '<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>'
        '{"city": "Paris"}<|call|>'
        '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>"18"<|end|>'
        "<|start|>assistant"
    )
