"""Helpers of the prompt-checkpoint tests: two tiny GGUFs with the Qwen3.5 template (the
hybrid ``qwen35`` and a plain-attention ``llama``), physical models on them, greedy
requests, and what a cold run of a freshly loaded model generates."""

from __future__ import annotations

import json

import pytest

from llamacpp_fixtures import MMPROJ_FILE, TEMPLATE, data_url, png  # noqa: F401
from llmux import Behaviour, Cancellation, ChatRequest, PhysicalModel, SamplingParams, Usage
from llmux.chatformats import get_format

pytest.importorskip("llama_cpp")

import llmux_llamacpp as plugin  # noqa: E402
from llmux_llamacpp import checkpoints  # noqa: E402
from llmux_llamacpp.tiny import write_llama_model, write_mmproj, write_text_model  # noqa: E402

SYSTEM = {"role": "system", "content": "You are a weather agent. Use get_weather(city). " * 3}
USER1 = {"role": "user", "content": "What is the weather in Paris today?"}
CALL = {"role": "assistant", "content": "", "reasoning_content": "I should look this up.",
        "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}]}
RESULT = {"role": "tool", "tool_call_id": "c1", "content": "It is sunny and 21 degrees."}
ANSWER = {"role": "assistant", "content": "It is sunny.",
          "reasoning_content": "Thinking about the answer..."}
USER2 = {"role": "user", "content": "And the weather in Paris tomorrow?"}


def model_files(tmp_path_factory):
    """The test modules' ``files`` fixture: a folder with both GGUFs and the mmproj."""
    folder = tmp_path_factory.mktemp("checkpoints")
    template = TEMPLATE.read_text()
    write_text_model(folder / "qwen35.gguf", template)
    write_llama_model(folder / "llama.gguf", template)
    write_mmproj(folder / MMPROJ_FILE)
    yield folder
    checkpoints.forget()


def physical(folder, arch: str, name: str | None = None, cache_gb: float = 0.01,
             **options):
    return PhysicalModel(
        name=name or f"cp-{arch}", type="llm", backend="llamacpp", path=".",
        models_dir=folder, vram_gb=0.5, chat_format="qwen3_5",
        options={"model_file": f"{arch}.gguf", "n_ctx": 2048, "n_threads": 2,
                 "prompt_cache_gb": cache_gb, **options})


def request(messages, thinking: bool = True) -> ChatRequest:
    return ChatRequest(model="m", messages=messages, chat_format=get_format("qwen3_5"),
                       behaviour=Behaviour(thinking=thinking),
                       sampling=SamplingParams(max_tokens=8, temperature=0.0, seed=7))


def run(model, handle, req) -> tuple[list, Usage]:
    events = list(plugin.infer(model, handle, req, Cancellation()))
    usage = next(e for e in events if isinstance(e, Usage))
    return [repr(e) for e in events if not isinstance(e, Usage)] + [usage.completion_tokens], usage


def cold(folder, arch, req, **options) -> list:
    """What a freshly loaded model without checkpoints generates for ``req``."""
    model = physical(folder, arch, name=f"cold-{arch}", cache_gb=0, **options)
    handle = plugin.load(model, None)
    try:
        out, usage = run(model, handle, req)
        assert usage.cached_tokens == 0
        return out
    finally:
        plugin.unload(model, handle)


def tokens(handle, req) -> list[int]:
    return handle.llama.tokenize(handle.render(req)[0].encode(), add_bos=True, special=True)


def history_end(handle, req) -> int:
    """Where the prompt's history ends (before its generation prompt)."""
    fmt = req.chat_format
    messages = fmt.prepare_messages(req.messages, req.behaviour)
    text = handle._prompt_text(messages, req.tools, fmt.template_kwargs(req.behaviour),
                               add_generation_prompt=False)
    return common(handle.llama.tokenize(text.encode(), add_bos=True, special=True),
                  tokens(handle, req))


def common(a, b) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
