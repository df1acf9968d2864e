"""Structured outputs and enforced tool choice on the tiny random-weight qwen35 GGUF,
through HTTP and the official ``openai`` client: the same schemas as the transformers
runtime (llmux.structured.conformance), valid only because the constraint is real.

In thinking mode a helper raises ``</think>``'s logit after a few tokens (wrapped around the
constraint's sampler stage, which still decides what is allowed), so the reasoning ends.
"""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from llamacpp_fixtures import KEY

from llmux.structured import conformance as cases

pytestmark = pytest.mark.slow


USER = [{"role": "user", "content": "Answer in JSON, please."}]
MODELS = ["tiny-instruct", "tiny-thinking"]


@pytest.fixture(autouse=True)
def end_reasoning(monkeypatch):
    """After six constrained steps, ``</think>`` gets +1000 (where the mask allows it)."""
    from llmux_llamacpp import constrain

    original = constrain.GuideStage.__call__

    def call(self, input_ids, scores):
        self.steps = getattr(self, "steps", 0) + 1
        if self.steps > 6:
            scores[END_THINK[0]] += 1000.0
        return original(self, input_ids, scores)

    monkeypatch.setattr(constrain.GuideStage, "__call__", call)


END_THINK: list[int] = []


@pytest.fixture(autouse=True)
def end_think_id(llmux_config):
    if not END_THINK:
        from llmux_llamacpp.tiny import tokenizer

        tokens, _, _ = tokenizer()
        END_THINK.append(tokens.index("</think>"))


async def answer(client, model, stream, **kwargs):
    kwargs = {"model": model, "messages": USER, "max_tokens": 400, "temperature": 1.0,
              "seed": 3, **kwargs}
    if not stream:
        response = await client.chat.completions.create(**kwargs)
        choice = response.choices[0]
        calls = [(c.function.name, c.function.arguments) for c in choice.message.tool_calls or ()]
        reasoning = (choice.message.model_extra or {}).get("reasoning_content") or ""
        return choice.message.content or "", reasoning, calls, choice.finish_reason
    answer = cases.StreamedAnswer()
    async for chunk in await client.chat.completions.create(stream=True, **kwargs):
        answer.add(chunk)
    return answer.result()


@pytest.mark.parametrize("name", list(cases.SCHEMAS))
async def test_answer_follows_the_schema(client, name):
    i = list(cases.SCHEMAS).index(name)
    model, stream = MODELS[i % 2], bool((i // 2) % 2)
    content, reasoning, calls, finish = await answer(
        client, model, stream, response_format=cases.response_format(name))
    assert (finish, calls) == ("stop", []), (content, reasoning)
    jsonschema.validate(json.loads(content), cases.SCHEMAS[name])
    if model == "tiny-thinking":
        assert reasoning


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("choice", ["required", "get_weather"])
async def test_forced_tool_call(client, model, stream, choice):
    tool_choice = choice if choice == "required" else {
        "type": "function", "function": {"name": choice}}
    content, _, calls, finish = await answer(client, model, stream, tools=cases.TOOLS,
                                             tool_choice=tool_choice)
    assert finish == "tool_calls" and calls, content
    for name, arguments in calls:
        assert choice in ("required", name)
        jsonschema.validate(json.loads(arguments), cases.TOOL_SCHEMAS[name])


async def test_tool_choice_none_never_calls(client, prompts):
    content, _, calls, finish = await answer(client, "tiny-tool", False, tools=cases.TOOLS,
                                             tool_choice="none")
    # tiny-tool's grammar spells a get_weather call: with no tools it stays text
    assert calls == [] and finish == "stop" and "<tool_call>" in content
    assert "get_weather tool" not in prompts()[-1]


async def test_parse_with_a_pydantic_model(client):
    from pydantic import BaseModel, Field

    class City(BaseModel):
        name: str = Field(max_length=8)
        population: int = Field(ge=0, le=1000)
        capital: bool

    completion = await client.chat.completions.parse(
        model="tiny-instruct", messages=USER, response_format=City, max_tokens=200,
        temperature=1.0, seed=5)
    city = completion.choices[0].message.parsed
    assert isinstance(city, City) and 0 <= city.population <= 1000


async def test_refusal_names_the_feature(client):
    schema = {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}}
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model="tiny-instruct", messages=USER, max_tokens=5,
            response_format={"type": "json_schema",
                             "json_schema": {"name": "t", "schema": schema}})
    error = caught.value.body
    assert error["param"] == "response_format.json_schema.schema"
    assert "uniqueItems" in error["message"] and error["code"] == "invalid_schema"
    assert KEY not in error["message"]
