"""The plugin's hooks driven directly: discovery, VRAM estimate, load/unload, prompts,
sampling limits, stop strings, UTF-8, locking and cancellation."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest
from llamacpp_fixtures import ANSWER, MMPROJ_FILE, MODEL_FILE, WEATHER_TOOL, gbnf
from llamacpp_tiny import write_text_model

import llmux_llamacpp as plugin
from llmux import (
    Behaviour,
    Cancellation,
    ChatRequest,
    ContentDelta,
    Finish,
    InvalidRequest,
    ModelLoadError,
    PhysicalModel,
    ReasoningDelta,
    SamplingParams,
    Usage,
)
from llmux.chatformats import get_format

GiB = 1024**3


def physical(tiny_dir: Path, **options) -> PhysicalModel:
    opts = {"model_file": MODEL_FILE, "n_ctx": 2048, "n_threads": 2, **options}
    return PhysicalModel(
        name="tiny", type="llm", backend="llamacpp", path=tiny_dir.name,
        models_dir=tiny_dir.parent, vram_gb=0.5, chat_format="qwen3_5", options=opts,
    )


@pytest.fixture(scope="module")
def loaded(tiny_dir):
    model = physical(tiny_dir, mmproj_file=MMPROJ_FILE)
    handle = plugin.load(model, None)
    yield model, handle
    plugin.unload(model, handle)


def chat(messages, *, thinking=True, grammar=None, tools=None, **sampling) -> ChatRequest:
    options = {"grammar": grammar} if grammar else {}
    sampling.setdefault("temperature", 0.0)
    return ChatRequest(
        model="tiny", messages=messages, tools=tools, chat_format=get_format("qwen3_5"),
        behaviour=Behaviour(thinking=thinking, options=options),
        sampling=SamplingParams(**sampling),
    )


def run(loaded, request, cancel=None) -> list:
    model, handle = loaded
    return list(plugin.infer(model, handle, request, cancel or Cancellation()))


def text_of(events, kind) -> str:
    return "".join(e.text for e in events if isinstance(e, kind))


HELLO = [{"role": "user", "content": "Hello"}]


# --------------------------------------------------------------------------- discovery


def test_entry_point_discovers_the_backend(monkeypatch):
    from llmux.plugins import get_plugin_manager
    from llmux.runtime import Runtimes

    monkeypatch.setenv("LLMUX_LOAD_PLUGINS", "llamacpp")
    runtimes = Runtimes(get_plugin_manager())
    info = runtimes.get("llamacpp").info
    assert info.types == {"llm"}
    assert info.options_schema["required"] == ["model_file"]


# --------------------------------------------------------------------------- VRAM


def test_estimate_counts_files_and_context(tiny_dir):
    small = plugin.estimate_vram(physical(tiny_dir, n_ctx=2048), None).gb
    large = plugin.estimate_vram(physical(tiny_dir, n_ctx=4096), None).gb
    # Only the full-attention layer has a KV cache: 2 kv heads x (32 + 32) x f16.
    assert large - small == pytest.approx(2048 * 2 * 64 * 2 / GiB)
    assert small > (tiny_dir / MODEL_FILE).stat().st_size / GiB
    with_vision = plugin.estimate_vram(physical(tiny_dir, n_ctx=2048, mmproj_file=MMPROJ_FILE), None).gb
    assert with_vision - small == pytest.approx(
        (tiny_dir / MMPROJ_FILE).stat().st_size / GiB + 0.25
    )
    assert plugin.estimate_vram(physical(tiny_dir, n_gpu_layers=0), None).gb == 0.0


def test_estimate_of_a_qwen35_9b_shaped_file(tmp_path):
    """Qwen3.5-9B's metadata: 32 layers, every 4th full attention, 4 kv heads of 256."""
    import gguf

    path = tmp_path / "meta.gguf"
    w = gguf.GGUFWriter(str(path), "qwen35")
    for key, value in {"block_count": 32, "embedding_length": 4096, "attention.head_count": 16,
                       "attention.head_count_kv": 4, "attention.key_length": 256,
                       "attention.value_length": 256, "full_attention_interval": 4,
                       "ssm.conv_kernel": 4, "ssm.state_size": 128, "ssm.group_count": 16,
                       "ssm.time_step_rank": 32, "ssm.inner_size": 4096}.items():
        w.add_uint32(f"qwen35.{key}", value)
    w.add_token_list(["a"] * 1000)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    model = PhysicalModel(name="m", type="llm", backend="llamacpp", path="meta.gguf",
                          models_dir=tmp_path, vram_gb=9, options={"model_file": "meta.gguf"})

    def estimate(n_ctx):
        return plugin.estimate_vram(model.__class__(**{**model.__dict__,
                                                       "options": {**model.options,
                                                                   "n_ctx": n_ctx}}), None).gb

    # 8 full-attention layers x 4 kv heads x 512 x 2 bytes = 32 KiB per token: 1 GiB at 32k.
    assert estimate(32768) - estimate(0 + 64) == pytest.approx((32768 - 64) * 32768 / GiB)
    state = 24 * ((4 - 1) * (4096 + 2 * 16 * 128) + 128 * 4096) * 4
    compute = 512 * (1000 + 8 * 4096) * 4
    assert estimate(64) == pytest.approx((path.stat().st_size + 64 * 32768 + state + compute)
                                         / GiB)


def test_missing_file_is_a_clear_load_error(tiny_dir):
    with pytest.raises(ModelLoadError, match="does not exist; download it"):
        plugin.load(physical(tiny_dir, model_file="nope.gguf"), None)


# --------------------------------------------------------------------------- load / unload


def test_device_switch_sets_gpu_layers(tiny_dir):
    from llmux_llamacpp.options import settings

    model = physical(tiny_dir, n_gpu_layers=12)
    assert settings(model).n_gpu_layers == 12
    assert settings(model, "cpu").n_gpu_layers == 0
    assert settings(model, "cuda").n_gpu_layers == -1
    handle = plugin.load(model, "cpu")
    try:
        assert handle.llama.model_params.n_gpu_layers == 0
    finally:
        plugin.unload(model, handle)


def test_forcing_cuda_on_a_cpu_build_fails_clearly(tiny_dir):
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("this llama-cpp-python build has GPU support")
    with pytest.raises(ModelLoadError, match="no GPU support"):
        plugin.load(physical(tiny_dir), "cuda")


def test_unload_frees_model_and_vision(tiny_dir):
    model = physical(tiny_dir, mmproj_file=MMPROJ_FILE)
    handle = plugin.load(model, None)
    llama = handle.llama
    assert handle.vision is not None
    plugin.unload(model, handle)
    assert handle.vision is None and not hasattr(handle, "llama")
    assert llama._model.model is None  # Llama.close() ran
    handle.close()  # idempotent


def test_a_gguf_without_chat_template_is_refused(tmp_path):
    write_text_model(tmp_path / "plain.gguf", "")
    model = PhysicalModel(name="p", type="llm", backend="llamacpp", path=".",
                          models_dir=tmp_path, vram_gb=1, options={"model_file": "plain.gguf"})
    with pytest.raises(ModelLoadError, match="no embedded chat template"):
        plugin.load(model, None)


# --------------------------------------------------------------------------- prompts


def test_thinking_on_and_off_prompt_tails(loaded):
    _, handle = loaded
    on, _, _ = handle.render(chat(HELLO, thinking=True))
    off, _, _ = handle.render(chat(HELLO, thinking=False))
    assert on == "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n<think>\n"
    assert off == ("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
                   "<think>\n\n</think>\n\n")


def test_tools_render_with_the_embedded_template(loaded):
    _, handle = loaded
    prompt, _, _ = handle.render(chat(HELLO, tools=[WEATHER_TOOL]))
    assert prompt.startswith("<|im_start|>system\n# Tools\n\nYou have access to the following "
                             "functions:\n\n<tools>\n{\"type\": \"function\"")


def test_tool_choice_none_leaves_the_tools_out(loaded):
    _, handle = loaded
    request = chat(HELLO, tools=[WEATHER_TOOL])
    prompt, _, _ = handle.render(dataclasses.replace(request, tool_choice="none"))
    assert "<tools>" not in prompt


def test_a_prompt_longer_than_the_context_is_400(loaded):
    with pytest.raises(InvalidRequest, match="holds 2048"):
        run(loaded, chat([{"role": "user", "content": "weather " * 3000}]))


def test_template_errors_are_400(loaded):
    with pytest.raises(InvalidRequest, match="System message must be at the beginning"):
        run(loaded, chat([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]))


# --------------------------------------------------------------------------- generation


def test_grammar_output_is_parsed_into_reasoning_and_content(loaded):
    events = run(loaded, chat(HELLO, grammar=gbnf(ANSWER)))
    assert text_of(events, ReasoningDelta) == "The user greets me."
    assert text_of(events, ContentDelta) == "Hello! Grüße, 世界."  # multi-byte across tokens
    finish, usage = events[-2:]
    assert finish == Finish("stop")
    assert isinstance(usage, Usage) and usage.prompt_tokens == len(
        loaded[1].llama.tokenize(loaded[1].render(chat(HELLO))[0].encode(), special=True))
    assert usage.completion_tokens > 10


def test_max_tokens_finishes_with_length(loaded):
    events = run(loaded, chat(HELLO, grammar=gbnf(ANSWER), max_tokens=3))
    assert events[-2] == Finish("length")
    assert events[-1].completion_tokens == 3


def test_stop_string_cuts_the_content(loaded):
    events = run(loaded, chat(HELLO, grammar=gbnf(ANSWER), stop=("Grüße",)))
    assert text_of(events, ContentDelta) == "Hello! "
    assert events[-2] == Finish("stop")


def test_seeded_sampling_is_reproducible(loaded):
    request = chat(HELLO, temperature=1.0, top_p=0.9, seed=42, max_tokens=12,
                   presence_penalty=0.5, frequency_penalty=0.5)
    first, second = run(loaded, request), run(loaded, request)
    assert first == second


def test_an_image_leaves_no_stale_prefix_behind(loaded):
    """Image positions are never reused as a cached prefix by the next text prompt."""
    from llamacpp_fixtures import data_url, png

    text = chat(HELLO, max_tokens=12)
    before = run(loaded, text)
    image = [{"role": "user", "content": [{"type": "text", "text": "Hello"},
                                          {"type": "image_url",
                                           "image_url": {"url": data_url(png(64, 64))}}]}]
    with_image = run(loaded, chat(image, max_tokens=3))
    assert with_image[-1].prompt_tokens > before[-1].prompt_tokens
    assert run(loaded, text) == before


def test_concurrent_requests_are_serialized(loaded):
    results: list = []

    def worker():
        results.append(run(loaded, chat(HELLO, grammar=gbnf(ANSWER))))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 3
    assert all(text_of(r, ContentDelta) == "Hello! Grüße, 世界." for r in results)


def test_cancel_stops_between_tokens(loaded):
    from llamacpp_fixtures import ENDLESS

    cancel = Cancellation()
    events = []
    for event in plugin.infer(*loaded, chat(HELLO, grammar=ENDLESS), cancel):
        events.append(event)
        if len(events) == 5:
            cancel.cancel()
    assert events[-2] == Finish("cancelled")
    assert events[-1].completion_tokens < 20


def test_cancel_while_waiting_for_the_lock(loaded):
    _, handle = loaded
    cancel = Cancellation()
    with handle.lock:
        events_iter = plugin.infer(*loaded, chat(HELLO), cancel)
        threading.Timer(0.1, cancel.cancel).start()
        events = list(events_iter)
    assert events == [Finish("cancelled"), Usage(0, 0)]
