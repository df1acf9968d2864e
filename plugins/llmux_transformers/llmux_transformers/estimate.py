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
- **activations**: the working set of the widest prefill slice (chat prefills in slices of
  ``T = min(prefill_chunk, ctx)`` tokens, default 1024, see ``prefill.py``; the last slice
  attends over all ``ctx`` keys), in the load dtype of ``e`` bytes::

      activations = 1.2 x (stream + masks + max(layer kinds)) + 4 x vocab x 4

  - stream: the residual stream, norms (fp32) and RoPE tables of the slice,
    ``T x (hidden x (3e + 8) + 16 head_dim)``;
  - masks: the boolean 4-D masks built once per forward, ``2 T x keys`` bytes for the full
    (``keys = ctx``) and the sliding layers (``keys = min(ctx, window - 1 + T)``), plus
    ``e`` per element for eager's float mask, none for flash attention;
  - attention layer: projections ``T x ((4 heads + 3 kv_heads) head_dim + hidden) x e``, the
    cache's concatenation copy of the layer's K and V ``2 kv_heads head_dim keys e``, and
    the scores: ``llmux_sinks`` (gpt-oss' default) at most one sub-block of
    ``attention.SCORE_BUDGET_BYTES`` (256 MiB); ``sdpa`` K and V repeated to all heads (a
    mask rules out GQA in the kernel) plus fp32 accumulators, assuming the
    memory-efficient kernel; ``eager`` ``heads T keys (3e + 4)``;
  - MLP: ``T (3 intermediate + hidden) e``; MoE per token ``top_k (4 hidden + 6
    intermediate) e`` plus the router's scores and the one-hot expert mask;
  - Gated DeltaNet (PyTorch path): projections and convolution ``T (3 conv_dim e +
    v_heads v_dim (e + 12))`` plus the chunked rule's fp32 tensors ``T' v_heads (9 dim +
    3 x 64) x 4`` (``T'`` rounded up to 64-token chunks);
  - 1.2: allocator rounding and the small tensors left out; the logits: the kept position
    and the sampling processors' fp32 copies.

  Checked against the measured peak of the tiny models' prefill on CPU
  (``tests/test_activation_estimate.py``: measured <= estimate <= 2 x measured + 1 MiB). The
  vision tower's activations (an image prompt's encoder pass) are not included.
"""

from __future__ import annotations

import math
import re
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


def weights_bytes(
    ckpt: Checkpoint, dtype: str, *, dequantise: bool, quantize: str | None = None,
    keep: tuple[str, ...] = (),
) -> float:
    """The weights' size on the device when loaded in ``dtype``: only the tensors the model
    class loads (:attr:`Checkpoint.loaded_tensors`); ``quantize`` (``"fp8"``, ``"mxfp4"``)
    when transformers quantises an unquantised checkpoint on load, ``keep`` the modules it
    leaves alone besides the default ones (see :func:`quantised_on_load_bytes`)."""
    if quantize and not ckpt.quant_method:
        return quantised_on_load_bytes(ckpt, dtype, quantize, keep)
    size = TORCH_DTYPE_BYTES[dtype]
    method = ckpt.quant_method
    total = 0.0
    for t in ckpt.loaded_tensors:
        if method == "mxfp4" and not dequantise and t.name.endswith(_EXPERT_BIASES):
            total += t.numel * 4  # Mxfp4GptOssExperts keeps its biases in float32
        elif t.dtype in FLOAT_DTYPES and not (method and t.name.endswith(_SCALE_SUFFIXES)):
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


# --------------------------------------------------------------------------- quantised on load

# transformers' fine-grained FP8 block when it quantises on load (FineGrainedFP8Config's
# default weight_block_size); loading.py passes this same value.
FP8_BLOCK = 128
MXFP4_GROUP = 32  # MXFP4: one E8M0 scale byte per 32 FP4 values
# What transformers keeps unconverted when no modules_to_not_convert is given
# (``get_keys_to_not_convert``: the output embeddings, tied weights and the last parameter,
# all ``lm_head`` in these models); llmux passes it along with ``options.quantize_keep``.
DEFAULT_KEEP = ("lm_head",)
# nn.Embedding modules (2-D weights, never converted: the FP8 quantizer swaps nn.Linear only).
_EMBEDDINGS = ("embed_tokens", "pos_embed", "wte", "wpe", "embed_positions",
               "word_embeddings", "position_embeddings")
_EXPERTS = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")
_EXPERT_BIASES = tuple(e + "_bias" for e in _EXPERTS)


def quantised_on_load_bytes(
    ckpt: Checkpoint, dtype: str, method: str, keep: tuple[str, ...] = ()
) -> float:
    """An unquantised checkpoint's weights after transformers quantised them on load.

    - ``fp8`` (``FineGrainedFP8HfQuantizer``, not pre-quantised): every ``nn.Linear`` not
      kept becomes an ``FP8Linear``: a 1-byte weight and an F32 ``weight_scale_inv`` of
      ``(ceil(out/128), ceil(in/128))``. A weight whose sides are not multiples of the block
      (Qwen3.5's ``in_proj_a``/``in_proj_b``, 32 rows) stays in ``dtype``, scale allocated
      all the same. Biases, norms, convolutions, embeddings and ``lm_head`` stay in ``dtype``;
      the vision tower's linears are converted like the decoder's.
    - ``mxfp4`` (``Mxfp4HfQuantizer``, gpt-oss only): each ``GptOssMLP``'s experts become
      FP4 values (half a byte) plus a scale byte per 32, their biases float32; everything
      else stays in ``dtype``.
    """
    size = TORCH_DTYPE_BYTES[dtype]
    kept = DEFAULT_KEEP + tuple(keep)
    total = 0.0
    for t in ckpt.loaded_tensors:
        if t.dtype not in FLOAT_DTYPES:
            total += t.nbytes
        elif method == "fp8" and _fp8_converts(t.name, t.shape, kept):
            total += fp8_linear_bytes(t.shape, size)
        elif method == "mxfp4" and _mxfp4_converts(t.name, t.shape, kept):
            total += t.numel / 2 + t.numel / MXFP4_GROUP
        elif method == "mxfp4" and t.name.endswith(_EXPERT_BIASES) and _mxfp4_converts(
                t.name.removesuffix("_bias"), (0, 0, 0), kept):
            total += t.numel * 4  # float32 in Mxfp4GptOssExperts
        else:
            total += t.numel * size
    return total


def fp8_linear_bytes(shape: tuple[int, ...], dtype_bytes: int, block: int | None = None) -> float:
    """An ``FP8Linear`` of weight ``shape`` (out, in) quantised on load."""
    block = block or FP8_BLOCK
    rows, cols = shape
    scale = math.ceil(rows / block) * math.ceil(cols / block) * 4
    tiles = rows % block == 0 and cols % block == 0
    return rows * cols * (1 if tiles else dtype_bytes) + scale


def _fp8_converts(name: str, shape: tuple[int, ...], kept: tuple[str, ...]) -> bool:
    if not name.endswith(".weight") or len(shape) != 2:
        return False
    module = name[: -len(".weight")]
    if module.rsplit(".", 1)[-1] in _EMBEDDINGS:
        return False
    return not is_kept(module, kept)


def _mxfp4_converts(name: str, shape: tuple[int, ...], kept: tuple[str, ...]) -> bool:
    if not name.endswith(_EXPERTS) or len(shape) != 3:
        return False
    return not is_kept(name.rsplit(".", 1)[0], kept)


def is_kept(module: str, patterns: tuple[str, ...]) -> bool:
    """transformers' ``should_convert_module``, negated: a pattern keeps a module when it
    matches from the start up to a module boundary (also as a regex) or as a suffix."""
    boundary = r"(?:(?<=\.)|(?=\.|$))"
    return any(re.match(rf"(?:{p}){boundary}", module) or module.endswith(p) for p in patterns)


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


# --------------------------------------------------------------------------- activations

ACTIVATION_MARGIN = 1.2  # allocator rounding and the small tensors the terms leave out
LOGITS_KEPT = 4  # fp32 vocab-sized rows: the kept logits and the sampling processors' copies
GDN_CHUNK = 64  # transformers' Gated DeltaNet chunk length


def activation_bytes(
    cfg: Mapping[str, Any], context: int, dtype_bytes: int, *,
    prefill_chunk: int | None = None, attn_implementation: str | None = None,
) -> float:
    """The peak working set of the prefill beyond weights and KV cache: the last (widest)
    slice of a chunked prefill at ``context`` tokens, times :data:`ACTIVATION_MARGIN`,
    plus the kept logits (see the module docstring)."""
    return sum(activation_terms(
        cfg, context, dtype_bytes, prefill_chunk=prefill_chunk,
        attn_implementation=attn_implementation,
    ).values())


def activation_terms(
    cfg: Mapping[str, Any], context: int, dtype_bytes: int, *,
    prefill_chunk: int | None = None, attn_implementation: str | None = None,
) -> dict[str, float]:
    """:func:`activation_bytes` term by term (bytes): ``stream``, ``masks``, ``layer`` (the
    widest layer kind's working set), ``margin`` and ``logits``."""
    from .attention import SCORE_BUDGET_BYTES  # read now: tests shrink it
    from .prefill import DEFAULT_CHUNK

    e = dtype_bytes
    ctx = max(1, int(context))
    tokens = min(prefill_chunk or DEFAULT_CHUNK, ctx)
    hidden = int(cfg.get("hidden_size") or 0)
    heads = int(cfg.get("num_attention_heads") or 1)
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    layers = int(cfg.get("num_hidden_layers") or 0)
    kinds = set(cfg.get("layer_types") or ["full_attention"] * max(layers, 1))
    window = int(cfg.get("sliding_window") or ctx)
    impl = attn_implementation or (
        "llmux_sinks" if cfg.get("model_type") == "gpt_oss" else "sdpa"
    )
    keys = {"full_attention": ctx, "sliding_attention": min(ctx, window - 1 + tokens)}

    stream = tokens * (hidden * (3 * e + 8) + 16 * head_dim)
    mask_bytes = 0 if impl.startswith("flash") else 2 + (e if impl == "eager" else 0)
    masks = sum(mask_bytes * tokens * keys[k] for k in keys if k in kinds)
    working = [_mlp_bytes(cfg, tokens, hidden, e)]
    for kind in kinds:
        if kind == "linear_attention":
            working.append(_linear_attention_bytes(cfg, tokens, e))
        else:  # full, sliding, or unknown (as full)
            working.append(_attention_bytes(
                impl, tokens, keys.get(kind, ctx), heads, kv_heads, head_dim, hidden, e,
                SCORE_BUDGET_BYTES,
            ))
    layer = max(working)
    vocab = int(cfg.get("vocab_size") or 0)
    return {
        "stream": stream, "masks": masks, "layer": layer,
        "margin": (ACTIVATION_MARGIN - 1) * (stream + masks + layer),
        "logits": LOGITS_KEPT * vocab * 4,
    }


def _attention_bytes(impl: str, tokens: int, keys: int, heads: int, kv_heads: int,
                     head_dim: int, hidden: int, e: int, budget: int) -> float:
    """One attention layer on a slice of ``tokens`` queries over ``keys`` keys."""
    from .attention import score_block_rows, score_bytes_per_element

    projections = tokens * ((4 * heads + 3 * kv_heads) * head_dim + hidden) * e
    cache_copy = 2 * kv_heads * head_dim * keys * e  # DynamicLayer's cat: old and new K, V
    repeated = 2 * heads * keys * head_dim * e if heads > kv_heads else 0
    if impl == "llmux_sinks":
        rows = min(tokens, score_block_rows(heads, keys, e, budget))
        scores = heads * rows * keys * score_bytes_per_element(e) + 3 * rows * keys
        return projections + cache_copy + scores
    if impl == "eager":
        return projections + cache_copy + repeated + heads * tokens * keys * (3 * e + 4)
    if impl.startswith("flash"):
        return projections + cache_copy
    # sdpa: K and V repeated to every head (a mask rules out enable_gqa), then the
    # memory-efficient kernel's fp32 accumulators
    return projections + cache_copy + repeated + heads * tokens * head_dim * 4


def _mlp_bytes(cfg: Mapping[str, Any], tokens: int, hidden: int, e: int) -> float:
    """The MLP of one layer: gate, up and their product per token; for MoE per token and
    expert chosen (transformers' grouped experts: gathered input, gate_up, gated, down,
    weighted output), the router's scores and the eager path's one-hot expert mask."""
    experts = int(cfg.get("num_local_experts") or cfg.get("num_experts") or 0)
    if experts:
        inter = int(cfg.get("moe_intermediate_size") or cfg.get("intermediate_size") or 0)
        top_k = int(cfg.get("num_experts_per_tok") or 1)
        per_token = top_k * (4 * hidden + 6 * inter) * e + top_k * experts * 8 + experts * 4
        return tokens * per_token
    inter = int(cfg.get("intermediate_size") or 0)
    return tokens * (3 * inter + hidden) * e


def _linear_attention_bytes(cfg: Mapping[str, Any], tokens: int, e: int) -> float:
    """A Gated DeltaNet layer on a slice, as transformers' PyTorch path runs it (the fla
    kernels take less): the projections and causal convolution in the load dtype, the
    gated norm in fp32, and ``torch_chunk_gated_delta_rule``'s fp32 tensors, nine per value
    head and token plus three 64 x 64 matrices per head and 64-token chunk."""
    k_heads = int(cfg.get("linear_num_key_heads") or 0)
    v_heads = int(cfg.get("linear_num_value_heads") or 0)
    k_dim = int(cfg.get("linear_key_head_dim") or 0)
    v_dim = int(cfg.get("linear_value_head_dim") or 0)
    conv = 2 * k_heads * k_dim + v_heads * v_dim
    padded = -(-tokens // GDN_CHUNK) * GDN_CHUNK
    layer = tokens * (3 * conv * e + v_heads * v_dim * (e + 12))
    rule = padded * v_heads * (9 * max(k_dim, v_dim) + 3 * GDN_CHUNK) * 4
    return layer + rule


def estimate(
    ckpt: Checkpoint, *, dtype: str, context: int | None, dequantise: bool = False,
    prefill_chunk: int | None = None, attn_implementation: str | None = None,
) -> Estimate:
    """Everything ``ckpt`` needs on one device with ``context`` tokens of KV cache;
    ``prefill_chunk`` and ``attn_implementation`` are the model's options (None: the
    defaults, 1024 and llmux_sinks for gpt-oss / sdpa otherwise)."""
    size = TORCH_DTYPE_BYTES[dtype]
    cfg = ckpt.text_config
    context = context or DEFAULT_CONTEXT
    return Estimate(
        weights=weights_bytes(ckpt, dtype, dequantise=dequantise),
        kv_cache=kv_cache_bytes(cfg, context, size),
        activations=activation_bytes(cfg, context, size, prefill_chunk=prefill_chunk,
                                     attn_implementation=attn_implementation),
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
