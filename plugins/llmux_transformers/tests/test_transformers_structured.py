"""Structured outputs and enforced tool choice on the tiny random-weight transformers models,
through HTTP and the official ``openai`` client.

Random weights follow no format by themselves: every answer below parses and validates only
because the constraint is real. The schemas bound their answers (llmux.structured.conformance),
so a constrained answer always ends well inside ``max_tokens``. Where reasoning comes first,
a helper processor raises the end-of-reasoning token's logit after a few tokens (the
constraint, applied after it, still decides what is allowed).
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from llmux.structured import conformance as cases

pytestmark = pytest.mark.slow


USER = [{"role": "user", "content": "Answer in JSON, please."}]
MODELS = ["qwen-text-instruct", "qwen-text-thinking", "gpt-oss-low"]
END_REASONING = {"qwen3_5": "</think>", "gpt_oss": "<|end|>"}


class EndReasoning:
    """Raises the end-of-reasoning token after ``after`` generated tokens."""

    def __init__(self, token: int, start: int, after: int = 6) -> None:
        self.token, self.start, self.after = token, start, after

    def __call__(self, input_ids, scores):
        if input_ids.shape[1] - self.start >= self.after:
            scores[:, self.token] += 1000.0
        return scores


@pytest.fixture(autouse=True)
def end_reasoning():
    from llmux_transformers import chat

    def factory(request, tokenizer, prompt_ids):
        tag = END_REASONING.get(getattr(request.chat_format, "name", ""))
        return EndReasoning(tokenizer.convert_tokens_to_ids(tag), len(prompt_ids)) if tag else None

    chat.EXTRA_LOGITS_PROCESSORS.append(factory)
    yield
    chat.EXTRA_LOGITS_PROCESSORS.remove(factory)


def answer(client, model, stream, **kwargs):
    """(content, reasoning, tool calls as [(name, arguments)], finish_reason)."""
    kwargs = {"model": model, "messages": USER, "max_tokens": 400, "temperature": 1.0,
              "seed": 3, **kwargs}
    if not stream:
        response = client.chat.completions.create(**kwargs)
        choice = response.choices[0]
        calls = [(c.function.name, c.function.arguments) for c in choice.message.tool_calls or ()]
        reasoning = (choice.message.model_extra or {}).get("reasoning_content") or ""
        return choice.message.content or "", reasoning, calls, choice.finish_reason
    answer = cases.StreamedAnswer()
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        answer.add(chunk)
    return answer.result()


@pytest.mark.parametrize("name", list(cases.SCHEMAS))
def test_answer_follows_the_schema(client, name):
    i = list(cases.SCHEMAS).index(name)
    model, stream = MODELS[i % len(MODELS)], bool(i % 2)
    content, reasoning, calls, finish = answer(
        client, model, stream, response_format=cases.response_format(name))
    assert (finish, calls) == ("stop", []), (content, reasoning)
    jsonschema.validate(json.loads(content), cases.SCHEMAS[name])
    if model != "qwen-text-instruct":
        assert reasoning  # the reasoning came first, unconstrained


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("choice", ["required", "add_items"])
def test_forced_tool_call(client, model, stream, choice):
    tool_choice = choice if choice == "required" else {
        "type": "function", "function": {"name": choice}}
    content, _, calls, finish = answer(client, model, stream, tools=cases.TOOLS,
                                       tool_choice=tool_choice)
    assert finish == "tool_calls" and calls, content
    for name, arguments in calls:
        assert choice in ("required", name)
        jsonschema.validate(json.loads(arguments), cases.TOOL_SCHEMAS[name])


@pytest.mark.parametrize("model", ["qwen-text-instruct", "gpt-oss-low"])
def test_tool_choice_none_never_calls(client, recorder, model):
    script = ("<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
              "</function>\n</tool_call>") if model.startswith("qwen") else (
        "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
        '{"city": "Paris"}<|call|>')
    with recorder.forcing(script):  # the model tries to call anyway
        content, _, calls, finish = answer(client, model, False, tools=cases.TOOLS,
                                           tool_choice="none")
    assert calls == [] and finish == "stop"
    assert "get_weather" not in recorder.prompts[-1]  # the tools never reached the model


def test_parse_with_a_pydantic_model(client):
    from pydantic import BaseModel, Field

    class City(BaseModel):
        name: str = Field(max_length=8)
        population: int = Field(ge=0, le=1000)
        capital: bool

    completion = client.chat.completions.parse(
        model="qwen-text-instruct", messages=USER, response_format=City, max_tokens=200,
        temperature=1.0, seed=5)
    city = completion.choices[0].message.parsed
    assert isinstance(city, City) and 0 <= city.population <= 1000


def test_json_object(client):
    content, _, _, finish = answer(client, "qwen-text-instruct", False,
                                   response_format={"type": "json_object"}, max_tokens=60)
    assert content.startswith("{")
    if finish == "stop":
        assert isinstance(json.loads(content), dict)
