"""llmux_sinks: gpt-oss's eager attention with sinks, computed in bounded sub-blocks."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from llmux_transformers import attention

pytestmark = pytest.mark.slow

PROMPT = 300  # longer than the tiny gpt-oss's sliding window (128) and many sub-blocks


@pytest.fixture(scope="module")
def models(models_dir):
    from transformers import AutoModelForCausalLM

    path = str(models_dir / "gpt-oss")
    name = attention.implementation_for({"model_type": "gpt_oss"}, {})
    assert name == "llmux_sinks"
    load = lambda impl: AutoModelForCausalLM.from_pretrained(  # noqa: E731
        path, dtype=torch.float32, attn_implementation=impl).eval()
    return load("eager"), load(name)


class LargestProduct(TorchDispatchMode):
    """The most bytes a batched (4-D) matrix product's result took: the attention scores."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten.matmul.default and out.ndim == 4:
            self.largest = max(self.largest, out.numel() * out.element_size())
        return out


def test_equal_to_eager_in_bounded_sub_blocks(models, monkeypatch):
    from transformers import DynamicCache

    eager, sinks = models
    heads = sinks.config.num_attention_heads
    budget = heads * PROMPT * 4 * 8  # 8 query rows over all keys
    monkeypatch.setattr(attention, "SCORE_BUDGET_BYTES", budget)
    ids = torch.randint(0, sinks.config.vocab_size, (1, PROMPT),
                        generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = eager(input_ids=ids).logits
        with LargestProduct() as seen:
            whole = sinks(input_ids=ids).logits  # no mask: causal and window from positions
        # Through a cache in slices of 37, then one decode step: the SDPA boolean masks.
        cache, parts = DynamicCache(config=sinks.config), []
        for start in range(0, PROMPT - 1, 37):
            parts.append(sinks(input_ids=ids[:, start:min(PROMPT - 1, start + 37)],
                               cache=cache, use_cache=True).logits)
        parts.append(sinks(input_ids=ids[:, -1:], cache=cache, use_cache=True).logits)
    assert seen.largest <= budget
    assert seen.largest > budget // 4  # it did use the budget: 8 rows x all keys
    torch.testing.assert_close(whole, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.cat(parts, dim=1), expected, rtol=1e-5, atol=1e-5)


def test_window_and_causality_without_a_mask(monkeypatch):
    """Called with no mask (transformers passes none where the pattern is plainly causal),
    the causal and sliding-window pattern comes from the positions: equal to eager with the
    explicit mask, for queries that are the last keys of a longer key sequence, in
    sub-blocks of 7 rows."""
    from types import SimpleNamespace

    from transformers.models.gpt_oss.modeling_gpt_oss import eager_attention_forward

    gen = torch.Generator().manual_seed(2)
    heads, kv_heads, q_len, k_len, dim, window = 8, 2, 50, 70, 16, 16
    monkeypatch.setattr(attention, "SCORE_BUDGET_BYTES", heads * k_len * 4 * 7)
    module = SimpleNamespace(num_key_value_groups=heads // kv_heads, training=False,
                             sinks=torch.randn(heads, generator=gen))
    q = torch.randn(1, heads, q_len, dim, generator=gen)
    k, v = (torch.randn(1, kv_heads, k_len, dim, generator=gen) for _ in range(2))
    q_pos = torch.arange(k_len - q_len, k_len)[:, None]
    k_pos = torch.arange(k_len)[None, :]
    for sliding in (None, window):
        visible = k_pos <= q_pos
        if sliding:
            visible &= k_pos > q_pos - sliding
        mask = torch.zeros(1, 1, q_len, k_len).masked_fill(~visible, torch.finfo().min)
        expected, _ = eager_attention_forward(module, q, k, v, mask, scaling=0.25)
        with torch.inference_mode():
            got, _ = attention.sinks_attention(module, q, k, v, None, scaling=0.25,
                                               sliding_window=sliding)
            masked, _ = attention.sinks_attention(module, q, k, v, visible[None, None],
                                                  scaling=0.25, sliding_window=sliding)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(masked, expected, rtol=1e-5, atol=1e-5)


def test_without_sinks_it_is_plain_attention(models_dir, monkeypatch):
    """The option may name llmux_sinks for any model: Qwen3.5's full-attention layers (no
    sinks) get eager's softmax attention, in sub-blocks."""
    from transformers import AutoModelForCausalLM

    attention.register()
    monkeypatch.setattr(attention, "SCORE_BUDGET_BYTES", 4 * PROMPT * 4 * 8)
    load = lambda impl: AutoModelForCausalLM.from_pretrained(  # noqa: E731
        str(models_dir / "qwen-text"), dtype=torch.float32, attn_implementation=impl).eval()
    ids = torch.randint(0, 500, (1, PROMPT), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = load("eager")(input_ids=ids).logits
        got = load("llmux_sinks")(input_ids=ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_sub_block_rows_follow_the_budget():
    # gpt-oss-20b at a 32k context, bf16: 64 heads x 32768 keys x (4 + 2) bytes a row.
    rows = attention.score_block_rows(64, 32768, 2)
    assert rows == attention.SCORE_BUDGET_BYTES // (64 * 32768 * 6) == 21
    assert attention.score_block_rows(64, 10**9, 2) == 1  # never zero rows


def test_default_only_for_gpt_oss():
    assert attention.implementation_for({"model_type": "qwen3_5"}, {}) is None
    chosen = {"attn_implementation": "eager"}
    assert attention.implementation_for({"model_type": "gpt_oss"}, chosen) == "eager"
