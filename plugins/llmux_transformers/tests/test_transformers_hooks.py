"""The plugin's hooks called directly: discovery, sizing, the quantised loading paths, the
fit check, unloading."""

from __future__ import annotations

import gc
import importlib.metadata
import weakref
from pathlib import Path

import pytest
import torch
from transformers_fixtures import PHYSICAL

import llmux_transformers
from llmux import Cancellation, ChatRequest, InsufficientVram, SamplingParams
from llmux.chatformats import get_format
from llmux.types import PhysicalModel
from llmux_transformers.checkpoint import Checkpoint
from llmux_transformers.estimate import GiB, estimate, kv_cache_bytes, weights_bytes

pytestmark = pytest.mark.slow


def physical(models_dir: Path, name: str, **options) -> PhysicalModel:
    _, fmt, vision = PHYSICAL[name]
    return PhysicalModel(
        name=name, type="llm", backend="transformers", path=name, models_dir=models_dir,
        vram_gb=0.5, vision=vision, tools=True, chat_format=fmt,
        options={"max_context": 256, **options},
    )


def generate(pm: PhysicalModel, handle, n: int = 5):
    request = ChatRequest(
        model=pm.name, messages=[{"role": "user", "content": "Hello"}],
        sampling=SamplingParams(max_tokens=n, temperature=0), chat_format=get_format(pm.chat_format),
    )
    return list(llmux_transformers.infer(pm, handle, request, Cancellation()))


def test_found_through_the_entry_point():
    (ep,) = [e for e in importlib.metadata.entry_points(group="llmux") if e.name == "transformers"]
    assert ep.load() is llmux_transformers
    (info,) = llmux_transformers.backends()
    assert info.name == "transformers" and "llm" in info.types


def test_estimate_reads_the_files_and_the_context(models_dir):
    fp8 = Checkpoint.open(models_dir / "qwen-fp8")
    plain = Checkpoint.open(models_dir / "qwen-text")
    # FP8 weights are one byte each on the GPU; dequantised they are bfloat16 again.
    assert weights_bytes(fp8, "bfloat16", dequantise=False) < weights_bytes(plain, "bfloat16", dequantise=False)
    assert weights_bytes(fp8, "bfloat16", dequantise=True) == weights_bytes(plain, "bfloat16", dequantise=False)
    mxfp4 = Checkpoint.open(models_dir / "gpt-oss-mxfp4")
    dense = Checkpoint.open(models_dir / "gpt-oss")
    assert weights_bytes(mxfp4, "bfloat16", dequantise=True) == weights_bytes(dense, "bfloat16", dequantise=False)
    assert weights_bytes(mxfp4, "bfloat16", dequantise=False) < weights_bytes(dense, "bfloat16", dequantise=False)
    # Only Qwen3.5's full-attention layers keep a KV cache that grows with the context.
    short, long = (estimate(plain, dtype="bfloat16", context=c).kv_cache for c in (1000, 2000))
    assert long - short == 1000 * 2 * 2 * 32 * 2  # 1 layer x K,V x 2 kv heads x 32 x bf16
    assert llmux_transformers.estimate_vram(physical(models_dir, "qwen-fp8"), None).gb > 0


def test_kv_cache_of_the_production_shapes():
    qwen_9b = {"num_hidden_layers": 32, "num_attention_heads": 16, "num_key_value_heads": 4,
               "head_dim": 256, "layer_types": ["linear_attention"] * 3 * 8 + ["full_attention"] * 8,
               "linear_num_key_heads": 16, "linear_num_value_heads": 32,
               "linear_key_head_dim": 128, "linear_value_head_dim": 128}
    kv = kv_cache_bytes(qwen_9b, 32768, 2)
    assert 1.0 < kv / GiB < 1.1  # 8 full-attention layers of 32k tokens + 24 small states
    gpt_oss = {"num_hidden_layers": 24, "num_attention_heads": 64, "num_key_value_heads": 8,
               "head_dim": 64, "sliding_window": 128,
               "layer_types": ["sliding_attention", "full_attention"] * 12}
    assert kv_cache_bytes(gpt_oss, 32768, 2) == 12 * 2 * 8 * 64 * 2 * (32768 + 128)


def test_a_load_that_cannot_fit_fails_before_allocating(models_dir, monkeypatch):
    from llmux_transformers import loading

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr(loading, "load_weights", refuse)
    pm = physical(models_dir, "gpt-oss-mxfp4", max_vram_gb=0.0001)
    with pytest.raises(InsufficientVram) as info:
        llmux_transformers.load(pm, "cpu")
    assert "mxfp4 dequantised to float32 on cpu" in str(info.value)
    assert "options.max_vram_gb = 0.0001" in str(info.value)


@pytest.fixture
def quantizers(monkeypatch):
    """Records every transformers quantizer that post-processes a loaded model."""
    from transformers.quantizers.base import HfQuantizer

    seen = []
    original = HfQuantizer.postprocess_model

    def spy(self, model, **kwargs):
        seen.append((type(self).__name__, self.quantization_config.dequantize))
        return original(self, model, **kwargs)

    monkeypatch.setattr(HfQuantizer, "postprocess_model", spy)
    return seen


def test_fp8_block_checkpoint_loads_through_the_fp8_path(models_dir, quantizers):
    from safetensors.torch import load_file

    pm = physical(models_dir, "qwen-fp8")
    handle = llmux_transformers.load(pm, "cpu")
    assert quantizers == [("FineGrainedFP8HfQuantizer", True)]  # no FP8 kernels on CPU
    stored = load_file(models_dir / "qwen-fp8" / "model.safetensors")
    name = "model.layers.1.self_attn.q_proj.weight"
    w, scale = stored[name], stored[name.replace("weight", "weight_scale_inv")]
    expected = w.float() * scale.repeat_interleave(32, 0).repeat_interleave(32, 1)
    loaded = handle.model.get_parameter(name)
    torch.testing.assert_close(loaded.float(), expected)
    events = generate(pm, handle)
    assert events[-1].completion_tokens == 5
    llmux_transformers.unload(pm, handle)


def test_mxfp4_checkpoint_loads_through_the_mxfp4_path(models_dir, quantizers):
    from safetensors.torch import load_file
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors

    pm = physical(models_dir, "gpt-oss-mxfp4")
    handle = llmux_transformers.load(pm, "cpu")
    assert quantizers == [("Mxfp4HfQuantizer", True)]  # dequantised: no kernels on CPU
    stored = load_file(models_dir / "gpt-oss-mxfp4" / "model.safetensors")
    prefix = "model.layers.0.mlp.experts.down_proj"
    expected = convert_moe_packed_tensors(stored[prefix + "_blocks"], stored[prefix + "_scales"])
    loaded = handle.model.get_parameter(prefix)
    torch.testing.assert_close(loaded.float(), expected.float())
    assert generate(pm, handle)[-1].completion_tokens == 5
    llmux_transformers.unload(pm, handle)


def test_unload_really_frees_the_model(models_dir):
    pm = physical(models_dir, "qwen-text")
    handle = llmux_transformers.load(pm, None)
    assert handle.plan.device == ("cuda" if torch.cuda.is_available() else "cpu")
    generate(pm, handle)
    model = weakref.ref(handle.model)
    llmux_transformers.unload(pm, handle)
    gc.collect()
    assert model() is None


def test_cancel_while_waiting_for_the_model(models_dir):
    pm = physical(models_dir, "qwen-text")
    handle = llmux_transformers.load(pm, "cpu")
    request = ChatRequest(model=pm.name, messages=[{"role": "user", "content": "Hi"}],
                          chat_format=get_format("qwen3_5"))
    cancel = Cancellation()
    with handle.lock:  # another request is generating
        events = llmux_transformers.infer(pm, handle, request, cancel)
        cancel.cancel()
        finish, usage = list(events)
    assert finish.reason == "cancelled" and usage.completion_tokens == 0
    llmux_transformers.unload(pm, handle)


def test_image_processor_falls_back_to_pil(models_dir, monkeypatch):
    """Where AutoImageProcessor cannot build the torchvision-backed processor, the PIL one
    is used (a CPU torch without torchvision)."""
    from transformers import AutoImageProcessor

    from llmux_transformers.vision import load_vision

    def no_torchvision(*args, **kwargs):
        raise ImportError("Qwen2VLImageProcessor requires the Torchvision library")

    monkeypatch.setattr(AutoImageProcessor, "from_pretrained", no_torchvision)
    config = type("Config", (), {"image_token_id": 7, "vision_config": None})()
    vision = load_vision(str(models_dir / "qwen-vision"), config)
    assert type(vision.processor).__name__ == "Qwen2VLImageProcessorPil"
    assert vision.merge_size == 2


def test_quantisation_plans(models_dir, tmp_path, monkeypatch):
    import json
    import shutil

    from llmux import ModelLoadError
    from llmux_transformers import cuda_kernels, loading

    mxfp4 = Checkpoint.open(models_dir / "gpt-oss-mxfp4")
    assert loading.plan(mxfp4, "cpu", {}).describe() == (
        "mxfp4 dequantised to float32 on cpu (no MXFP4 kernels on CPU)"
    )
    # On a CUDA GPU without triton/kernels: a clear error, or dequantised when allowed.
    monkeypatch.setattr(cuda_kernels, "capability", lambda device: (12, 0))
    monkeypatch.setattr(cuda_kernels, "mxfp4_missing", lambda device, options: "triton >= 3.4")
    with pytest.raises(ModelLoadError, match="MXFP4 on CUDA needs triton >= 3.4.*kernels_dir"):
        loading.plan(mxfp4, "cuda", {})
    assert loading.plan(mxfp4, "cuda", {"allow_dequantise": True}).dequantise
    fp8 = Checkpoint.open(models_dir / "qwen-fp8")
    monkeypatch.setattr(cuda_kernels, "fp8_missing", lambda device, options: None)
    assert loading.plan(fp8, "cuda", {}) == loading.Plan("cuda", "bfloat16", "fp8", False)
    # compressed-tensors checkpoints need the optional package.
    folder = tmp_path / "ct"
    shutil.copytree(models_dir / "qwen-text", folder)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "compressed-tensors"}
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(loading.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match=r"llmux-transformers\[compressed-tensors\]"):
        loading.plan(Checkpoint.open(folder), "cpu", {})


def test_sampling_seed_and_stop_strings(models_dir):
    from transformers_fixtures import Forcer

    from llmux import ContentDelta
    from llmux_transformers import chat

    pm = physical(models_dir, "qwen-text", prompt_cache_gb=0)  # equal events: usage too
    handle = llmux_transformers.load(pm, "cpu")

    def run(sampling, processor=None):
        request = ChatRequest(model=pm.name, messages=[{"role": "user", "content": "Hi"}],
                              sampling=sampling, chat_format=get_format("qwen3_5"))
        factory = (lambda r, tok, ids: processor(tok, ids)) if processor else None
        if factory:
            chat.EXTRA_LOGITS_PROCESSORS.append(factory)
        try:
            events = list(llmux_transformers.infer(pm, handle, request, Cancellation()))
        finally:
            if factory:
                chat.EXTRA_LOGITS_PROCESSORS.remove(factory)
        return events

    hot = SamplingParams(temperature=1.5, top_p=0.95, max_tokens=12, seed=7)
    assert run(hot) == run(hot)
    assert run(hot)[-2].reason == "length"

    def sunny(tok, ids):
        script = tok("</think>\n\nThe weather in Paris is sunny.", add_special_tokens=False)
        return Forcer(script["input_ids"], tok.convert_tokens_to_ids("<|im_end|>"), len(ids))

    events = run(SamplingParams(max_tokens=50, stop=("Paris",)), sunny)
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "The weather in "
    assert events[-2].reason == "stop"
    llmux_transformers.unload(pm, handle)
