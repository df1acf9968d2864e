"""VRAM needed by a checkpoint: weights as they will sit on the device, the KV cache for the
configured context, and the activations of one prefill. Pure arithmetic on the safetensors
headers and ``config.json``: no torch, no weights read, no GPU touched.

Rules (sizes in GiB, the unit GPU memory is sold in):

- **weights**: float tensors are cast to the load dtype; quantised tensors keep their stored
  size when the quantised path runs (native FP8, compressed-tensors, MXFP4 with kernels) and
  become load-dtype tensors when transformers dequantises them (FP8 ``weight`` -> one element
  per byte, MXFP4 ``*_blocks`` -> two elements per byte; their scales disappear).
- **KV cache**: K and V for every full-attention layer over ``max_context`` tokens, sliding
  layers over their window; Qwen3.5's linear-attention (Gated DeltaNet) layers keep a fixed
  recurrent and convolution state instead.
- **activations**: one layer's working set while prefilling ``max_context`` tokens
  (``ctx x (2 hidden + 3 intermediate)`` elements, intermediate x experts per token for MoE),
  plus fp32 logits for a few positions. Assumes a memory-efficient attention kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from .checkpoint import FLOAT_DTYPES, TORCH_DTYPE_BYTES, Checkpoint

GiB = 1024**3
DEFAULT_CONTEXT = 4096
# Quantisation methods whose weights stay quantised on a supported GPU.
QUANTISED_ON_GPU = {"fp8", "mxfp4", "compressed-tensors"}
_SCALE_SUFFIXES = ("weight_scale_inv", "weight_scale", "_scales", "input_scale")


@dataclass(frozen=True)
class Estimate:
    weights: float  # bytes
    kv_cache: float
    activations: float

    @property
    def total(self) -> float:
        return self.weights + self.kv_cache + self.activations

    @property
    def gib(self) -> float:
        return self.total / GiB

    def describe(self) -> str:
        return (
            f"{self.gib:.2f} GiB (weights {self.weights / GiB:.2f}, KV cache "
            f"{self.kv_cache / GiB:.2f}, activations {self.activations / GiB:.2f})"
        )


def weights_bytes(ckpt: Checkpoint, dtype: str, *, dequantise: bool) -> float:
    """The weights' size on the device when loaded in ``dtype``."""
    size = TORCH_DTYPE_BYTES[dtype]
    method = ckpt.quant_method
    total = 0.0
    for t in ckpt.tensors:
        if t.dtype in FLOAT_DTYPES and not (method and t.name.endswith(_SCALE_SUFFIXES)):
            total += t.numel * size
        elif not dequantise or not method:
            total += t.nbytes
        elif t.name.endswith(_SCALE_SUFFIXES):
            continue  # folded into the dequantised weight
        elif method == "mxfp4" and t.name.endswith("_blocks"):
            total += t.numel * 2 * size  # two FP4 values per byte
        else:
            total += t.numel * size
    return total


def kv_cache_bytes(cfg: Mapping[str, Any], context: int, dtype_bytes: int) -> float:
    layers = int(cfg.get("num_hidden_layers") or 0)
    heads = int(cfg.get("num_attention_heads") or 1)
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or (cfg.get("hidden_size", 0) // heads))
    types = list(cfg.get("layer_types") or ["full_attention"] * layers)
    per_token = 2 * kv_heads * head_dim * dtype_bytes
    window = int(cfg.get("sliding_window") or context)
    total = 0.0
    for kind in types:
        if kind == "full_attention":
            total += per_token * context
        elif kind == "sliding_attention":
            total += per_token * min(context, window)
        elif kind == "linear_attention":
            total += _linear_state_bytes(cfg)
        else:  # an unknown layer kind: count it as full attention, to be safe
            total += per_token * context
    return total


def _linear_state_bytes(cfg: Mapping[str, Any]) -> float:
    """Gated DeltaNet state of one layer: recurrent (fp32) plus convolution window."""
    k_heads = int(cfg.get("linear_num_key_heads") or 0)
    v_heads = int(cfg.get("linear_num_value_heads") or 0)
    k_dim = int(cfg.get("linear_key_head_dim") or 0)
    v_dim = int(cfg.get("linear_value_head_dim") or 0)
    kernel = int(cfg.get("linear_conv_kernel_dim") or 4)
    recurrent = v_heads * k_dim * v_dim * 4
    conv = (2 * k_heads * k_dim + v_heads * v_dim) * kernel * 4
    return recurrent + conv


def activation_bytes(cfg: Mapping[str, Any], context: int, dtype_bytes: int) -> float:
    hidden = int(cfg.get("hidden_size") or 0)
    inter = int(cfg.get("intermediate_size") or cfg.get("moe_intermediate_size") or 0)
    inter *= int(cfg.get("num_experts_per_tok") or 1)
    vocab = int(cfg.get("vocab_size") or 0)
    return context * (2 * hidden + 3 * inter) * dtype_bytes + 4 * vocab * 4


def estimate(
    ckpt: Checkpoint, *, dtype: str, context: int | None, dequantise: bool = False
) -> Estimate:
    """Everything ``ckpt`` needs on one device with ``context`` tokens of KV cache."""
    size = TORCH_DTYPE_BYTES[dtype]
    cfg = ckpt.text_config
    context = context or DEFAULT_CONTEXT
    return Estimate(
        weights=weights_bytes(ckpt, dtype, dequantise=dequantise),
        kv_cache=kv_cache_bytes(cfg, context, size),
        activations=activation_bytes(cfg, context, size),
    )


def stays_quantised_on_gpu(ckpt: Checkpoint) -> bool:
    return ckpt.quant_method in QUANTISED_ON_GPU


# --------------------------------------------------------------------------- speech-to-text

ASR_CHUNK_SECONDS = 35  # the longest piece Cohere Transcribe's processor hands the model
ASR_MARGIN = 0.10  # allocator slack and the feature extractor's tensors, as a share of weights


def estimate_asr(ckpt: Checkpoint, *, dtype: str) -> Estimate:
    """An encoder-decoder ASR model (``cohere_asr``) transcribing one chunk at a time:
    weights; the decoder's self-attention cache over all its positions plus its
    cross-attention cache over one chunk's encoder frames; one encoder layer's working set
    on a chunk (the convolutional subsampling's first feature map, or the attention scores
    in fp32, whichever is larger), plus a margin of ``ASR_MARGIN`` of the weights."""
    size = TORCH_DTYPE_BYTES[dtype]
    cfg = ckpt.config
    enc = cfg.get("encoder_config") or {}
    mel_frames = ASR_CHUNK_SECONDS * 100  # 10 ms hop
    enc_frames = math.ceil(mel_frames / int(enc.get("subsampling_factor") or 8))
    heads = int(cfg.get("num_attention_heads") or 8)
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or int(cfg.get("hidden_size") or 1024) // heads)
    positions = int(cfg.get("max_position_embeddings") or 1024)
    per_token = 2 * kv_heads * head_dim * size * int(cfg.get("num_hidden_layers") or 8)
    kv = per_token * (positions + enc_frames)
    channels = int(enc.get("subsampling_conv_channels") or 256)
    mels = int(enc.get("num_mel_bins") or 128)
    hidden = int(enc.get("hidden_size") or 1280)
    inter = int(enc.get("intermediate_size") or 4 * hidden)
    subsampling = channels * (mel_frames // 2) * (mels // 2) * size
    layer = enc_frames * (4 * hidden + inter) * size
    scores = int(enc.get("num_attention_heads") or 8) * enc_frames**2 * 4
    weights = weights_bytes(ckpt, dtype, dequantise=bool(ckpt.quant_method))
    activations = max(subsampling, layer + scores) + ASR_MARGIN * weights
    return Estimate(weights=weights, kv_cache=kv, activations=activations)
