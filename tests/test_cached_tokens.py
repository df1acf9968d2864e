"""``usage.prompt_tokens_details.cached_tokens`` says how much of a prompt was served from a
reused state: on every chat response and in the streamed usage chunk, counted on /metrics,
and exact on llama.cpp, where a request reuses the longest prefix still in the context."""

from __future__ import annotations

import json

import pytest

from llmux import ChatRequest, PhysicalModel, SamplingParams, Usage
from llmux.app import create_app
from llmux.chatformats import get_format
from llmux.testing import counter_value

from .conftest import AUTH


def _usage(events) -> Usage:
    events = list(events)  # to the end, as the server does: the state is saved after it
    return next(e for e in events if isinstance(e, Usage))


async def test_every_chat_response_carries_cached_tokens(aiohttp_client, demo_config,
                                                         builtin_pm):
    client = await aiohttp_client(create_app(demo_config, builtin_pm))
    model = next(v for v in demo_config.virtual.values() if v.type == "llm").name
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": 4}
    answer = await (await client.post("/v1/chat/completions", headers=AUTH, json=body)).json()
    assert answer["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    resp = await client.post("/v1/chat/completions", headers=AUTH, json={
        **body, "stream": True, "stream_options": {"include_usage": True}})
    chunks = [json.loads(line[6:]) for line in (await resp.text()).splitlines()
              if line.startswith("data: {")]
    usage = chunks[-1]["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
    metrics = await (await client.get("/metrics")).text()
    assert counter_value(metrics, "llmux_prompt_tokens", kind="processed", model=model) == (
        answer["usage"]["prompt_tokens"] + usage["prompt_tokens"])
    assert counter_value(metrics, "llmux_prompt_tokens", kind="cached", model=model) == 0


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    pytest.importorskip("llama_cpp")
    import llmux_llamacpp as plugin

    from benchmarks.gguf_model import SMOKE_SHAPE, build_gguf

    folder = tmp_path_factory.mktemp("prefix")
    build_gguf(folder / "m.gguf", SMOKE_SHAPE)  # arch llama: its KV cache can be cut
    model = PhysicalModel(name="m", type="llm", backend="llamacpp", path=".",
                          models_dir=folder, vram_gb=0.5, chat_format="plain",
                          options={"model_file": "m.gguf", "n_ctx": 512, "n_threads": 2})
    handle = plugin.load(model, None)
    yield plugin, model, handle
    plugin.unload(model, handle)


def _request(user: str) -> ChatRequest:
    return ChatRequest(model="m", chat_format=get_format("plain"),
                       messages=[{"role": "system", "content": "You are terse. " * 8},
                                 {"role": "user", "content": user}],
                       sampling=SamplingParams(max_tokens=4, temperature=0.0))


def _tokens(handle, request) -> list[int]:
    prompt = handle.render(request)[0]
    return handle.llama.tokenize(prompt.encode(), add_bos=True, special=True)


def test_llamacpp_reports_the_prefix_it_reused(llama):
    from llmux import Cancellation

    plugin, model, handle = llama
    first = _request("Name a colour.")
    u1 = _usage(plugin.infer(model, handle, first, Cancellation()))
    assert u1.cached_tokens == 0 and u1.prompt_tokens == len(_tokens(handle, first))
    # The same prompt again: all of it is in the context; one token is evaluated again to
    # bring its logits back.
    u2 = _usage(plugin.infer(model, handle, first, Cancellation()))
    assert u2.cached_tokens == u2.prompt_tokens - 1
    # Another question after the same system prompt: reused up to where the prompts differ,
    # never past it.
    other = _request("Name a fruit.")
    a, b = _tokens(handle, first), _tokens(handle, other)
    common = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    u3 = _usage(plugin.infer(model, handle, other, Cancellation()))
    assert u3.cached_tokens == common and 0 < common < u3.prompt_tokens


def test_the_store_is_reported_through_the_hook_and_health(llama):
    from llmux import Cancellation
    from llmux.plugins import get_plugin_manager
    from llmux.runtime import Runtimes

    plugin, model, handle = llama
    _usage(plugin.infer(model, handle, _request("Name a tree."), Cancellation()))
    report = Runtimes(get_plugin_manager()).get("llamacpp").prompt_cache(model)
    assert report["entries"] > 0 and 0 < report["bytes"] <= report["limit"]


async def test_health_lists_prompt_caches(aiohttp_client, demo_config, builtin_pm):
    client = await aiohttp_client(create_app(demo_config, builtin_pm))
    body = await (await client.get("/health")).json()
    assert body["prompt_cache"] == {}  # echo keeps no prompt state


def test_every_installed_runtime_registers_every_model_hook():
    from llmux.hookspecs import HOOK_NAMES
    from llmux.plugins import get_plugin_manager

    pm = get_plugin_manager()
    for name in ("llmux_transformers", "llmux_llamacpp"):
        pytest.importorskip(name)
    for hook in set(HOOK_NAMES) - {"chat_formats"}:
        owners = {impl.plugin_name for impl in getattr(pm.hook, hook).get_hookimpls()}
        assert {"transformers", "llamacpp", "llmux.builtin.echo"} <= owners, (hook, owners)
