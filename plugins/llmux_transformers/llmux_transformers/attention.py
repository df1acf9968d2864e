"""gpt-oss attention with sinks in bounded memory, registered with transformers as
``llmux_sinks``.

transformers runs gpt-oss with eager attention (it declares no SDPA because of the attention
sinks), which materialises ``heads x query x key`` scores per layer, several times over:
64 x 1024 x 32k x 2 bytes = 4 GiB a copy for one 1k-token prefill slice at a 32k context,
and it repeats K and V to every head. This function computes what
``eager_attention_forward`` of ``modeling_gpt_oss`` computes (the sink as one extra logit per
head, the softmax, the sink's column dropped) but one sub-block of queries at a time, sized
so that a sub-block's scores take at most :data:`SCORE_BUDGET_BYTES`, over only the keys a
sub-block can see (the causal prefix, or the window on sliding layers), with the query
heads grouped onto their key/value head instead of repeating K and V. The softmax runs in
fp32 (eager runs it in the scores' dtype): equal to eager in fp32, at least as precise in
bf16. A model without sinks gets plain softmax attention.

The mask: the name is registered with transformers' SDPA mask builder, so the model hands over
a boolean ``(batch, 1, query, key)`` mask where the pattern is not plainly causal (a prefill
slice after the first, sliding layers past their window, padding) and ``None`` where it is
(the first slice, full layers while decoding). With ``None`` the causal and sliding-window
pattern comes from the positions: the queries are the last ``query`` entries of ``key`` (a
dynamic cache, as ``generate`` and the chunked prefill use). Inference only: the softmax
runs in place.
"""

from __future__ import annotations

from typing import Any, Mapping

NAME = "llmux_sinks"
#: The most bytes one sub-block's scores may take (fp32 scores + the probabilities cast to
#: the value dtype). :func:`score_block_rows` sizes sub-blocks by it; the estimate reads it.
SCORE_BUDGET_BYTES = 256 * 1024**2

_registered = False


def register() -> str:
    """Register :func:`sinks_attention` (and the boolean SDPA mask for it) under
    :data:`NAME`; idempotent. Returns the name."""
    global _registered
    if not _registered:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        AttentionInterface.register(NAME, sinks_attention)
        AttentionMaskInterface.register(NAME, sdpa_mask)
        _registered = True
    return NAME


def implementation_for(config: Mapping[str, Any], options: Mapping[str, Any]) -> str | None:
    """The ``attn_implementation`` to load a checkpoint with: the option when set, else
    :data:`NAME` for gpt-oss (registered on the way), else None (transformers' choice)."""
    chosen = options.get("attn_implementation")
    if chosen is None and config.get("model_type") == "gpt_oss":
        chosen = NAME
    if chosen == NAME:
        register()
    return chosen


def score_bytes_per_element(dtype_bytes: int) -> int:
    """Bytes one score takes at the peak of a sub-block: the fp32 scores plus the
    probabilities in the value dtype (for fp32 the cast is the same tensor)."""
    return 4 if dtype_bytes >= 4 else 4 + dtype_bytes


def score_block_rows(heads: int, keys: int, dtype_bytes: int,
                     budget: int | None = None) -> int:
    """How many query rows one sub-block may take so that ``heads x rows x keys`` scores fit
    the budget (at least one row)."""
    budget = SCORE_BUDGET_BYTES if budget is None else budget
    per_row = heads * max(keys, 1) * score_bytes_per_element(dtype_bytes)
    return max(1, budget // per_row)


def sinks_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    scaling: float,
    dropout: float = 0.0,
    sliding_window: int | None = None,
    s_aux: Any = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """``eager_attention_forward`` of gpt-oss, query sub-block by sub-block.

    ``query`` is ``(batch, heads, q, dim)``, ``key``/``value`` ``(batch, kv_heads, k, dim)``;
    returns ``((batch, q, heads, dim), None)`` as the eager function does (no weights)."""
    import torch

    batch, heads, q_len, dim = query.shape
    kv_heads, k_len = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    sinks = s_aux if s_aux is not None else getattr(module, "sinks", None)
    if sinks is not None:  # without sinks (another model) it is plain softmax attention
        sinks = sinks.float().view(1, kv_heads, groups, 1, 1)
    mask = attention_mask
    if mask is not None:  # as transformers' SDPA path: a mask may run past the keys
        mask = mask[:, :, :, :k_len]
    first = k_len - q_len  # key index of the first query (queries are the last keys)
    window = sliding_window if sliding_window else None

    if mask is None and window is not None:
        widest = min(k_len, window - 1 + q_len)
    else:
        widest = k_len
    rows = score_block_rows(heads, widest, query.element_size())
    out = query.new_empty(batch, q_len, heads, dim)
    for start in range(0, q_len, rows):
        stop = min(q_len, start + rows)
        if mask is None:
            hi = first + stop  # keys up to the block's last query
            lo = 0 if window is None else max(0, first + start - window + 1)
        else:
            lo, hi = 0, k_len
        q = query[:, :, start:stop].reshape(batch, kv_heads, groups * (stop - start), dim)
        scores = torch.matmul(q, key[:, :, lo:hi].transpose(2, 3)).float()
        scores = scores.view(batch, kv_heads, groups, stop - start, hi - lo)
        scores.mul_(scaling)
        if mask is not None:
            block = mask[:, :, start:stop, lo:hi].unsqueeze(2)
            if block.dtype == torch.bool:
                scores.masked_fill_(~block, float("-inf"))
            else:
                scores.add_(block)
        elif stop - start > 1:  # one row (a decode step) sees exactly keys[lo:hi]
            _mask_by_position(scores, first + start, lo, window)
        top = scores.amax(dim=-1, keepdim=True)
        if sinks is not None:
            top = torch.maximum(top, sinks)
        scores.sub_(top).exp_()
        total = scores.sum(dim=-1, keepdim=True)
        if sinks is not None:
            total.add_((sinks - top).exp())
        probs = scores.div_(total).to(value.dtype)
        del scores
        o = torch.matmul(probs.view(batch, kv_heads, groups * (stop - start), hi - lo),
                         value[:, :, lo:hi])
        out[:, start:stop] = o.view(batch, heads, stop - start, dim).transpose(1, 2)
    return out, None


def _mask_by_position(scores: Any, q_first: int, k_first: int, window: int | None) -> None:
    """Mask in place what a query at key index ``q_first + i`` may not see among the keys
    from index ``k_first``: later keys, and keys ``window`` or more behind it."""
    import torch

    rows, cols = scores.shape[-2], scores.shape[-1]
    device = scores.device
    q_pos = torch.arange(q_first, q_first + rows, device=device)[:, None]
    k_pos = torch.arange(k_first, k_first + cols, device=device)[None, :]
    hidden = k_pos > q_pos
    if window is not None:
        hidden |= k_pos <= q_pos - window
    scores.masked_fill_(hidden, float("-inf"))
