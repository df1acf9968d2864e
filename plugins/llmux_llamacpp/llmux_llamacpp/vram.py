"""How much VRAM a GGUF model needs, read from the files' sizes and metadata.

    weights   the model GGUF's size x the share of layers offloaded (n_gpu_layers)
  + KV cache  n_ctx x sum over attention layers of n_head_kv x (key_length + value_length)
              x 2 bytes (llama.cpp's default f16 cache). Hybrid models (Qwen3.5: Gated
              DeltaNet + full attention) keep a KV cache only in their full-attention layers;
              which those are comes from ``{arch}.attention.recurrent_layers`` or, failing
              that, ``{arch}.full_attention_interval`` (every n-th layer), as llama.cpp reads it.
  + recurrent state, per linear-attention layer, one sequence, f32:
              (conv_kernel - 1) x (inner_size + 2 x group_count x state_size)
              + state_size x inner_size
  + compute   n_ubatch x (n_vocab + 8 x n_embd) x 4 bytes: llama.cpp's compute buffer is
              dominated by one batch of output logits (an assumption, close to what
              llama.cpp reports for large-vocabulary models)
  + vision    the mmproj GGUF's size + 0.25 GB for encoding an image (when offloaded)

Everything offloaded is scaled by the share of layers on the GPU; ``n_gpu_layers: 0``
needs no VRAM.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from llmux import ModelLoadError

from .gguf_meta import GGUFFormatError, read_metadata
from .options import Settings

GB = 1024**3
VISION_WORK_GB = 0.25


def metadata(path: Path) -> dict[str, Any]:
    """The GGUF's key/value metadata (not the tensors, not the vocabulary), plus ``_n_vocab``
    (the length of ``tokenizer.ggml.tokens``). Cached per (path, size, mtime): the core asks
    for the estimate several times per model."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ModelLoadError(f"{path} is not a readable GGUF file: {exc}") from exc
    return dict(_metadata(os.fspath(path), st.st_size, st.st_mtime_ns))


@lru_cache(maxsize=64)
def _metadata(path: str, size: int, mtime_ns: int) -> dict[str, Any]:
    try:
        fields = read_metadata(path)
    except (OSError, GGUFFormatError) as exc:
        raise ModelLoadError(f"{path} is not a readable GGUF file: {exc}") from exc
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key.startswith("tokenizer.ggml.") and key not in (
            "tokenizer.ggml.model", "tokenizer.ggml.pre"
        ) or key.startswith("GGUF."):
            continue
        out[key] = value
    out["_n_vocab"] = _n_vocab(fields)
    return out


def _n_vocab(fields: dict[str, Any]) -> int:
    tokens = fields.get("tokenizer.ggml.tokens")
    return len(tokens) if tokens is not None else 0


def estimate_gb(s: Settings) -> float:
    meta = metadata(s.model_path)
    arch = meta.get("general.architecture", "llama")

    def get(key: str, default: Any = 0) -> Any:
        return meta.get(f"{arch}.{key}", default)

    n_layer = int(get("block_count", 0)) or 1
    offloaded = n_layer if s.n_gpu_layers < 0 else min(s.n_gpu_layers, n_layer)
    share = offloaded / n_layer
    if share == 0:
        return 0.0

    recurrent = _recurrent_layers(get, n_layer)
    n_head_kv = _per_layer(get("attention.head_count_kv", get("attention.head_count", 0)), n_layer)
    n_embd = int(get("embedding_length", 0))
    n_head = int(get("attention.head_count", 1)) or 1
    k_len = int(get("attention.key_length", n_embd // n_head))
    v_len = int(get("attention.value_length", k_len))
    kv_bytes = sum(
        s.n_ctx * n_head_kv[il] * (k_len + v_len) * 2
        for il in range(n_layer) if not recurrent[il]
    )
    d_conv, d_state = int(get("ssm.conv_kernel", 0)), int(get("ssm.state_size", 0))
    d_inner, n_group = int(get("ssm.inner_size", 0)), int(get("ssm.group_count", 0))
    state_floats = max(d_conv - 1, 0) * (d_inner + 2 * n_group * d_state) + d_state * d_inner
    state_bytes = sum(recurrent) * state_floats * 4
    n_ubatch = int(s.llama_kwargs.get("n_ubatch", 512))
    compute_bytes = n_ubatch * (meta["_n_vocab"] + 8 * n_embd) * 4

    total = share * (os.path.getsize(s.model_path) + kv_bytes + state_bytes) + compute_bytes
    if s.mmproj_path is not None:
        total += os.path.getsize(s.mmproj_path) + VISION_WORK_GB * GB
    return total / GB


def _per_layer(value: Any, n_layer: int) -> list[int]:
    if isinstance(value, list):
        return [int(v) for v in value] + [0] * (n_layer - len(value))
    return [int(value)] * n_layer


def _recurrent_layers(get, n_layer: int) -> list[bool]:
    flags = get("attention.recurrent_layers", None)
    if isinstance(flags, list):
        return [bool(f) for f in flags[:n_layer]] + [False] * (n_layer - len(flags))
    interval = int(get("full_attention_interval", 0))
    if interval and get("ssm.inner_size", 0):
        return [(il + 1) % interval != 0 for il in range(n_layer)]
    return [False] * n_layer
