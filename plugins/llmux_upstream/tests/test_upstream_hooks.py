"""The hooks and the request body, without a server."""

from __future__ import annotations

from pathlib import Path

import llmux_upstream
import pytest
from llmux_upstream.chat import chat_body
from llmux_upstream.options import settings

from llmux import Behaviour, ChatRequest, ModelLoadError, PhysicalModel, SamplingParams


def model(**options) -> PhysicalModel:
    return PhysicalModel(name="remote", type="llm", backend="upstream", path="remote",
                         models_dir=Path("/nonexistent"), chat_format="plain",
                         options={"base_url": "http://gpu-box:8000/v1/", **options})


def test_estimate_is_zero_with_a_note():
    estimate = llmux_upstream.estimate_vram(model=model(), context=None)
    assert estimate.gb == 0.0 and estimate.note == "upstream at http://gpu-box:8000/v1"


def test_defaults():
    s = settings(model())
    assert s.model == "remote" and s.max_concurrency == 8 and s.verify_tls
    assert s.api_key() is None


def test_the_key_comes_from_the_environment_or_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("UP_KEY", "sk-secret")
    assert settings(model(api_key_env="UP_KEY")).api_key() == "sk-secret"
    (tmp_path / "key").write_text("sk-file\n")
    assert settings(model(api_key_file=str(tmp_path / "key"))).api_key() == "sk-file"
    monkeypatch.delenv("UP_KEY")
    with pytest.raises(ModelLoadError, match="UP_KEY is not set"):
        settings(model(api_key_env="UP_KEY")).api_key()


def test_the_schema_takes_no_key_and_needs_a_base_url():
    import jsonschema

    (info,) = llmux_upstream.backends()
    validator = jsonschema.Draft202012Validator(info.options_schema)
    assert not list(validator.iter_errors({"base_url": "http://x/v1", "api_key_env": "K"}))
    assert list(validator.iter_errors({"base_url": "http://x/v1", "api_key": "sk-1"}))
    assert list(validator.iter_errors({"model": "m"}))
    assert list(validator.iter_errors(
        {"base_url": "http://x/v1", "api_key_env": "K", "api_key_file": "/k"}))


def test_the_body_is_the_clients_request_with_the_upstream_name():
    s = settings(model(model="Qwen/Qwen3.5-27B", extra_body={"top_k": 20}))
    tools = [{"type": "function", "function": {"name": "f"}}]
    request = ChatRequest(
        model="virtual", messages=[{"role": "user", "content": "hi"}],
        behaviour=Behaviour(thinking=False, system_prompt_prefix="Be brief."),
        sampling=SamplingParams(temperature=0.2, max_tokens=9, stop=("END",), seed=3),
        tools=tools, tool_choice="auto", stream=False)
    body = chat_body(s, request)
    assert body == {
        "top_k": 20, "model": "Qwen/Qwen3.5-27B", "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "hi"}],
        "tools": tools, "tool_choice": "auto", "temperature": 0.2, "max_tokens": 9,
        "seed": 3, "stop": ["END"], "chat_template_kwargs": {"enable_thinking": False},
    }
    assert request.messages == [{"role": "user", "content": "hi"}]  # not edited in place


def test_tool_choice_goes_only_with_tools():
    """The core drops the tools of ``tool_choice: "none"``; OpenAI servers refuse a
    tool_choice without tools."""
    request = ChatRequest(model="v", messages=[{"role": "user", "content": "hi"}],
                          tools=None, tool_choice="none")
    body = chat_body(settings(model()), request)
    assert "tools" not in body and "tool_choice" not in body


def test_response_format_in_either_shape():
    """The core's ResponseFormat (type, schema, name, strict), or an older core's mapping."""
    from dataclasses import dataclass
    from types import MappingProxyType
    from typing import Any

    schema = MappingProxyType({"type": "object", "properties": MappingProxyType(
        {"city": {"type": "string"}}), "required": ("city",)})

    @dataclass(frozen=True)
    class Format:  # the fields of llmux.types.ResponseFormat
        type: str
        schema: Any = None
        name: str | None = None
        strict: bool = True

    @dataclass(frozen=True)
    class Request(ChatRequest):  # a ChatRequest with the field, before or after the core's
        response_format: Any = None

    def body(response_format) -> dict:
        request = Request(model="v", messages=[{"role": "user", "content": "hi"}],
                          response_format=response_format)
        return chat_body(settings(model()), request)

    assert "response_format" not in body(None)
    assert body(Format("json_object"))["response_format"] == {"type": "json_object"}
    assert body(Format("json_schema", schema, "place", False))["response_format"] == {
        "type": "json_schema", "json_schema": {
            "name": "place", "strict": False,
            "schema": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}
    raw = {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}
    assert body(raw)["response_format"] == raw


def test_credentials_in_the_base_url_are_refused_and_never_shown():
    m = model(base_url="https://user:s3cret@gpu-box:8000/v1")
    assert llmux_upstream.estimate_vram(model=m, context=None).note == (
        "upstream at https://gpu-box:8000/v1")
    with pytest.raises(ModelLoadError) as caught:
        llmux_upstream.load(model=m, device=None)
    assert "api_key_env" in str(caught.value) and "s3cret" not in str(caught.value)
