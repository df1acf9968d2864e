"""The activation estimate against what a prefill really allocates: the tiny models' peak
memory on CPU (fp32), measured with torch's profiler, chunked and unchunked."""

from __future__ import annotations

import pytest
import torch

from llmux import Cancellation
from llmux_transformers import attention, prefill
from llmux_transformers.checkpoint import Checkpoint
from llmux_transformers.estimate import GiB, activation_bytes, kv_cache_bytes

pytestmark = pytest.mark.slow

MiB = 1024**2
CONTEXT = 2048  # prompt tokens: 32 slices of 64
CHUNK = 64
BUDGET = 1 * MiB  # sub-blocks of 32 query rows at the last slices (4 heads x 2048 keys x 4 B)
SLACK = 1 * MiB  # what the estimate may exceed twice the measurement by


def peak_bytes(fn) -> int:
    """The most bytes allocated at once while ``fn`` runs, above what was allocated before:
    the CPU allocator's allocation and free events, summed in time order. (The profiler
    sees only this thread: the prefill runs here, not in chat's generation thread.)"""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = top = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()
        top = max(top, live)
    return top


def prefill_peak(model, chunk: int) -> int:
    """The peak of prefilling ``CONTEXT`` tokens as chat does: chunked when
    :func:`prefill.plan` says so, else the one forward ``generate`` would run."""
    ids = torch.randint(0, model.config.vocab_size, (1, CONTEXT + 1),
                        generator=torch.Generator().manual_seed(0))
    planned = prefill.plan(model, {"input_ids": ids}, chunk, None)

    def run():
        with torch.inference_mode():
            if planned is None:
                model(input_ids=ids, use_cache=True, logits_to_keep=1)
            else:
                assert planned.run(Cancellation()) is not None

    return peak_bytes(run)


@pytest.mark.parametrize("name", ["gpt-oss", "qwen-text"])
def test_estimate_bounds_the_measured_prefill(models_dir, monkeypatch, name):
    """measured <= estimate <= 2 x measured + 1 MiB, for a prefill in slices of 64 over
    2,048 tokens (gpt-oss: llmux_sinks in 32-row sub-blocks; Qwen3.5: SDPA and Gated
    DeltaNet); the estimate counts KV cache + activations, as the prefill allocates both.
    Unchunked, the same prefill takes several times as much, and the estimate (with
    ``prefill_chunk`` = the prompt) still bounds it."""
    from transformers import AutoModelForCausalLM

    monkeypatch.setattr(attention, "SCORE_BUDGET_BYTES", BUDGET)
    impl = attention.implementation_for(Checkpoint.open(models_dir / name).config, {})
    model = AutoModelForCausalLM.from_pretrained(
        str(models_dir / name), dtype=torch.float32, attn_implementation=impl).eval()
    cfg = Checkpoint.open(models_dir / name).text_config

    def estimated(chunk: int) -> float:
        return kv_cache_bytes(cfg, CONTEXT, 4) + activation_bytes(
            cfg, CONTEXT, 4, prefill_chunk=chunk, attn_implementation=impl)

    chunked, whole = prefill_peak(model, CHUNK), prefill_peak(model, CONTEXT)
    print(f"{name}: chunked peak {chunked / MiB:.2f} MiB, estimate {estimated(CHUNK) / MiB:.2f}; "
          f"unchunked {whole / MiB:.2f}, estimate {estimated(CONTEXT) / MiB:.2f}")
    assert chunked <= estimated(CHUNK) <= 2 * chunked + SLACK
    assert whole > 3 * chunked
    assert whole <= estimated(CONTEXT)


GPT_OSS_20B = {
    "model_type": "gpt_oss", "vocab_size": 201088, "hidden_size": 2880,
    "intermediate_size": 2880, "num_hidden_layers": 24, "num_attention_heads": 64,
    "num_key_value_heads": 8, "head_dim": 64, "sliding_window": 128,
    "layer_types": ["sliding_attention", "full_attention"] * 12, "num_local_experts": 32,
    "num_experts_per_tok": 4,
}


def test_gpt_oss_20b_prefill_at_32k_fits_beside_its_weights():
    """At the production shape, bf16, 32k context: the slice working set is about half a
    GiB (the old whole-prompt formula said 2.46, eager attention would need about 25), and
    it no longer grows with the context but for the masks and the cache copy."""
    at_32k = activation_bytes(GPT_OSS_20B, 32768, 2)
    assert 0.4 * GiB < at_32k < 0.7 * GiB
    assert activation_bytes(GPT_OSS_20B, 32768, 2, attn_implementation="eager") > 20 * GiB
    assert activation_bytes(GPT_OSS_20B, 65536, 2) < 1.3 * at_32k
    # weights 12.82 GiB + KV 0.75 GiB + this fit the 15.6 GiB a 16 GB card leaves usable
    assert 12.82 * GiB + kv_cache_bytes(GPT_OSS_20B, 32768, 2) + at_32k < 15.6 * GiB
