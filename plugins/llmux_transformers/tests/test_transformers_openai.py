"""The plugin behind the real llmux app, driven with the official ``openai`` client.

The tiny models have random weights; where a test needs particular output, a logits
processor (installed through the plugin's ``EXTRA_LOGITS_PROCESSORS`` seam) makes the real
model generate it token by token, through the real template, streamer and parser.
"""

from __future__ import annotations

import base64
import io
import json
import time

import openai
import pytest
from transformers_fixtures import TOOLS

pytestmark = pytest.mark.slow

QWEN_THINK = "Let me think about the weather.\n</think>\n\nThe weather in Paris is sunny."
HARMONY_THINK = (
    "<|channel|>analysis<|message|>Let me think about the weather.<|end|>"
    "<|start|>assistant<|channel|>final<|message|>The weather in Paris is sunny."
)
QWEN_CALL = (
    "I should call get_weather.\n</think>\n\n<tool_call>\n<function=get_weather>\n"
    "<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>"
)
HARMONY_CALL = (
    "<|channel|>analysis<|message|>I should call get_weather.<|end|><|start|>assistant"
    "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
    '{"city": "Paris"}<|call|>'
)
USER = [{"role": "user", "content": "What is the weather in Paris?"}]
FAMILIES = {  # virtual model -> (reasoning + content script, tool-call script)
    "qwen-text-thinking": (QWEN_THINK, QWEN_CALL),
    "qwen-fp8-instruct": ("The weather in Paris is sunny.", None),
    "gpt-oss-high": (HARMONY_THINK, HARMONY_CALL),
    "gpt-oss-mxfp4-high": (HARMONY_THINK, HARMONY_CALL),
}


def reasoning_of(obj) -> str | None:
    return (obj.model_extra or {}).get("reasoning_content")


def collect(stream):
    reasoning, content, calls, finish, deltas, usage = "", "", {}, None, 0, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            d = choice.delta
            if reasoning_of(d):
                reasoning += reasoning_of(d)
                deltas += 1
            if d.content:
                content += d.content
                deltas += 1
            for call in d.tool_calls or ():
                entry = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                entry["id"] = entry["id"] or call.id
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments or ""
                deltas += 1
            finish = choice.finish_reason or finish
    return reasoning, content, calls, finish, deltas, usage


@pytest.mark.parametrize("model", FAMILIES)
def test_reasoning_then_content(client, recorder, model):
    script = FAMILIES[model][0]
    thinks = model != "qwen-fp8-instruct"
    with recorder.forcing(script):
        reply = client.chat.completions.create(model=model, messages=USER, max_tokens=200)
        stream = client.chat.completions.create(
            model=model, messages=USER, max_tokens=200, stream=True,
            stream_options={"include_usage": True},
        )
        reasoning, content, calls, finish, deltas, usage = collect(stream)

    message = reply.choices[0].message
    assert message.content == "The weather in Paris is sunny."
    assert reasoning_of(message) == ("Let me think about the weather." if thinks else None)
    assert reply.choices[0].finish_reason == "stop"
    assert (reasoning or None, content, calls, finish) == (
        reasoning_of(message), message.content, {}, "stop"
    )
    assert deltas >= 6, "streamed token by token, not as one block"
    # exact: the prompt as fed to the model; the script's tokens and the end token
    assert usage.prompt_tokens == reply.usage.prompt_tokens == recorder.prompt_lengths[0]
    assert usage.completion_tokens == reply.usage.completion_tokens == recorder.forced[0] + 1


@pytest.mark.parametrize("model", [m for m, (_, call) in FAMILIES.items() if call])
@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls(client, recorder, model, stream):
    with recorder.forcing(FAMILIES[model][1]):
        reply = client.chat.completions.create(
            model=model, messages=USER, tools=TOOLS, max_tokens=200, stream=stream
        )
        if stream:
            reasoning, content, calls, finish, _, _ = collect(reply)
        else:
            choice = reply.choices[0]
            reasoning, content, finish = reasoning_of(choice.message), choice.message.content, \
                choice.finish_reason
            calls = {i: {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
                     for i, c in enumerate(choice.message.tool_calls or ())}
    assert reasoning == "I should call get_weather."
    assert not content
    assert finish == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert calls[0]["id"].startswith("call_")
    # The tools reached the template: the prompt lists the function.
    assert "get_weather" in recorder.prompts[-1]


def test_prompt_tails(client, recorder):
    for model in ("qwen-text-thinking", "qwen-text-instruct", "gpt-oss-high"):
        client.chat.completions.create(model=model, messages=USER, max_tokens=1)
    thinking, instruct, high = recorder.prompts
    assert thinking.endswith(
        "<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    )
    assert instruct.endswith(
        "<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    assert high.count("Reasoning:") == 1
    system = high.split("<|end|>")[0]
    assert system.startswith("<|start|>system<|message|>")
    assert system.splitlines()[-3:] == [
        "Reasoning: high", "",
        "# Valid channels: analysis, commentary, final. Channel must be included for every message.",
    ]
    assert high.endswith("<|start|>user<|message|>What is the weather in Paris?<|end|><|start|>assistant")


def _png(size: int) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_image_raises_prompt_tokens_by_its_tokens(client, models_dir):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )
    from PIL import Image

    url = _png(64)
    processor = Qwen2VLImageProcessorPil.from_pretrained(models_dir / "qwen-vision")
    grid = processor(images=[Image.new("RGB", (64, 64))], return_tensors="pt")["image_grid_thw"]
    image_tokens = int(grid[0].prod()) // 4
    assert image_tokens > 1

    def prompt_tokens(parts):
        reply = client.chat.completions.create(
            model="qwen-vision-thinking", max_tokens=2,
            messages=[{"role": "user", "content": parts}],
        )
        return reply.usage.prompt_tokens

    text = [{"type": "text", "text": "Describe this image."}]
    with_image = [{"type": "image_url", "image_url": {"url": url}}, *text]
    # <|vision_start|> and <|vision_end|> frame the image's tokens
    assert prompt_tokens(with_image) - prompt_tokens(text) == image_tokens + 2


def test_image_to_gpt_oss_is_400(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-oss-high", max_tokens=2,
            messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": _png(32)}},
                {"type": "text", "text": "What is this?"},
            ]}],
        )
    assert "does not accept images" in str(info.value)


def test_a_cancelled_stream_stops_generate_long_before_max_tokens(client, recorder,
                                                                  generation_ended):
    from llmux_transformers import chat

    steps: list[int] = []

    def factory(request, tokenizer, prompt_ids):
        ends = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])

        def slow(input_ids, scores):  # never ends by itself, 100 tokens a second at most
            steps.append(input_ids.shape[1])
            time.sleep(0.01)
            scores[:, ends] = float("-inf")
            return scores

        return slow

    chat.EXTRA_LOGITS_PROCESSORS.append(factory)
    try:
        stream = client.chat.completions.create(
            model="qwen-text-instruct", messages=USER, max_tokens=900, stream=True
        )
        received = 0
        for chunk in stream:
            received += bool(chunk.choices and chunk.choices[0].delta.content)
            if received >= 3:
                break
        assert not generation_ended.is_set(), "generation is running"
        stream.close()
        at_close = len(steps)
        assert generation_ended.wait(60)  # the generation ended with nobody reading it ...
        assert len(steps) - at_close < 100  # ... within a few tokens, far from max_tokens
    finally:
        chat.EXTRA_LOGITS_PROCESSORS.remove(factory)
