"""The hooks and the request body, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

import llmux_upstream
from llmux import Behaviour, ChatRequest, ModelLoadError, PhysicalModel, SamplingParams
from llmux_upstream.client import Upstream
from llmux_upstream.options import settings


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
    handle = Upstream("remote", settings(model(model="Qwen/Qwen3.5-27B",
                                               extra_body={"top_k": 20})), client=None)
    tools = [{"type": "function", "function": {"name": "f"}}]
    request = ChatRequest(
        model="virtual", messages=[{"role": "user", "content": "hi"}],
        behaviour=Behaviour(thinking=False, system_prompt_prefix="Be brief."),
        sampling=SamplingParams(temperature=0.2, max_tokens=9, stop=("END",), seed=3),
        tools=tools, tool_choice="auto", stream=False)
    body = handle.body(request)
    assert body == {
        "top_k": 20, "model": "Qwen/Qwen3.5-27B", "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "hi"}],
        "tools": tools, "tool_choice": "auto", "temperature": 0.2, "max_tokens": 9,
        "seed": 3, "stop": ["END"], "chat_template_kwargs": {"enable_thinking": False},
    }
    assert request.messages == [{"role": "user", "content": "hi"}]  # not edited in place
