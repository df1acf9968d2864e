"""Tiny random-weight GGUF files written directly with ``gguf.GGUFWriter``: no torch, no
converter, no download, ~0.1 s. Used by this plugin's tests, ``scripts/make_tiny_models.py``
and the benchmarks; importing it costs nothing (numpy, gguf and tokenizers load when a file
is written).

- ``qwen35`` text model: the real architecture (one Gated DeltaNet layer, one gated
  full-attention layer, interleaved M-RoPE) with a real byte-level BPE tokenizer trained here,
  holding the Qwen special tokens with the types llama.cpp's converter gives them
  (``<|...|>`` control, ``<think>``/``<tool_call>``... user-defined), and the Qwen3.5 chat
  template embedded.
- ``clip`` mmproj with projector ``qwen3vl_merger`` (one ViT block, patch 16, merge 2).

The tensor names, shapes and metadata keys were taken from what llama.cpp's own
``convert_hf_to_gguf.py`` (llama-cpp-python 0.3.36 sdist) writes for a tiny transformers
``Qwen3_5ForConditionalGeneration``; shapes below are numpy order (ggml order reversed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>", "<think>", "</think>", "<tool_call>", "</tool_call>",
    "<tool_response>", "</tool_response>",
]
CORPUS = [
    "The quick brown fox jumps over the lazy dog. What is the weather in Paris today?\n",
    "You have access to the following functions: get_weather(city) returns the weather.\n",
    "<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n",
    "I should look this up. It is sunny and 21 degrees. Thinking about the answer...\n",
]
HIDDEN, FF, HEADS, KV_HEADS, HEAD_DIM = 64, 128, 4, 2, 32
SSM_CONV, SSM_STATE, SSM_GROUPS, SSM_RANK, SSM_INNER = 4, 16, 2, 4, 64
VISION_HIDDEN, VISION_FF, PATCH, MERGE, POSITIONS = 32, 64, 16, 2, 64


def tokenizer():
    """A byte-level BPE (tokens in id order, types, merges)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=SPECIALS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 20, trainer)
    vocab = tok.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = json.loads(tok.to_str())["model"]["merges"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    types = [
        (3 if t.startswith("<|") else 4) if t in SPECIALS else 1  # CONTROL, USER_DEFINED, NORMAL
        for t in tokens
    ]
    return tokens, types, merges


def _w(rng, *shape, scale=0.2) -> Any:
    import numpy as np

    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _ones(*shape) -> Any:
    import numpy as np

    return np.ones(shape, dtype=np.float32)


@dataclass(frozen=True)
class TextShape:
    """A ``qwen35`` text model's shape: ``recurrent`` says, per layer, whether it is a Gated
    DeltaNet layer (True) or full attention (False). The default is the tiny test model;
    :data:`PRODUCTION_LAYERS` gives Qwen3.5-9B's per-layer dimensions at a tiny width."""

    hidden: int = HIDDEN
    ff: int = FF
    heads: int = HEADS
    kv_heads: int = KV_HEADS
    head_dim: int = HEAD_DIM
    rope_dims: int = 8
    rope_sections: tuple[int, ...] = (2, 1, 1, 0)
    ssm_conv: int = SSM_CONV
    ssm_state: int = SSM_STATE  # the linear heads' dimension
    ssm_groups: int = SSM_GROUPS  # key heads
    ssm_rank: int = SSM_RANK  # value heads
    recurrent: tuple[bool, ...] = (True, False)

    @property
    def ssm_inner(self) -> int:
        return self.ssm_rank * self.ssm_state


#: Qwen3.5-9B's attention and Gated DeltaNet layers (16 q / 4 kv heads of 256, partial
#: rotary 64 in sections 11/11/10; 16 key / 32 value heads of 128, conv kernel 4; every
#: 4th layer full attention), four of them, on a 64-wide residual stream.
PRODUCTION_LAYERS = TextShape(heads=16, kv_heads=4, head_dim=256, rope_dims=64,
                              rope_sections=(11, 11, 10, 0), ssm_state=128, ssm_groups=16,
                              ssm_rank=32, recurrent=(True, True, True, False))


def write_text_model(path: Path, chat_template: str, seed: int = 0,
                     shape: TextShape = TextShape()) -> Path:
    """The ``qwen35`` text model with ``chat_template`` embedded, written to ``path``."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "qwen35")
    w.add_string("general.type", "model")
    w.add_name("llmux tiny qwen35")
    a, sh = "qwen35", shape
    w.add_uint32(f"{a}.block_count", len(sh.recurrent))
    w.add_uint32(f"{a}.context_length", 8192)
    w.add_uint32(f"{a}.embedding_length", sh.hidden)
    w.add_uint32(f"{a}.feed_forward_length", sh.ff)
    w.add_uint32(f"{a}.attention.head_count", sh.heads)
    w.add_uint32(f"{a}.attention.head_count_kv", sh.kv_heads)
    w.add_array(f"{a}.rope.dimension_sections", list(sh.rope_sections))
    w.add_float32(f"{a}.rope.freq_base", 10000.0)
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", 1e-6)
    w.add_uint32(f"{a}.attention.key_length", sh.head_dim)
    w.add_uint32(f"{a}.attention.value_length", sh.head_dim)
    w.add_uint32("general.file_type", 0)
    w.add_uint32(f"{a}.ssm.conv_kernel", sh.ssm_conv)
    w.add_uint32(f"{a}.ssm.state_size", sh.ssm_state)
    w.add_uint32(f"{a}.ssm.group_count", sh.ssm_groups)
    w.add_uint32(f"{a}.ssm.time_step_rank", sh.ssm_rank)
    w.add_uint32(f"{a}.ssm.inner_size", sh.ssm_inner)
    w.add_array(f"{a}.attention.recurrent_layers", list(sh.recurrent))
    w.add_uint32(f"{a}.full_attention_interval", sh.recurrent.index(False) + 1)
    w.add_uint32(f"{a}.rope.dimension_count", sh.rope_dims)
    w.add_uint32("general.quantization_version", 2)
    n_vocab = _tokenizer(w, "qwen35", chat_template)

    hidden, inner = sh.hidden, sh.ssm_inner
    conv_dim = inner + 2 * sh.ssm_groups * sh.ssm_state
    tensors = {
        "token_embd.weight": _w(rng, n_vocab, hidden, scale=1.0),
        "output.weight": _w(rng, n_vocab, hidden),
        "output_norm.weight": _ones(hidden),
    }
    for il, recurrent in enumerate(sh.recurrent):
        b = f"blk.{il}"
        tensors[f"{b}.attn_norm.weight"] = _ones(hidden)
        if recurrent:  # Gated DeltaNet (linear attention)
            tensors.update({
                f"{b}.ssm_a": -np.abs(_w(rng, sh.ssm_rank, scale=1.0)),
                f"{b}.ssm_conv1d.weight": _w(rng, conv_dim, sh.ssm_conv),
                f"{b}.ssm_dt.bias": _w(rng, sh.ssm_rank),
                f"{b}.ssm_alpha.weight": _w(rng, sh.ssm_rank, hidden),
                f"{b}.ssm_beta.weight": _w(rng, sh.ssm_rank, hidden),
                f"{b}.attn_qkv.weight": _w(rng, conv_dim, hidden),
                f"{b}.attn_gate.weight": _w(rng, inner, hidden),
                f"{b}.ssm_norm.weight": _ones(sh.ssm_state),
                f"{b}.ssm_out.weight": _w(rng, hidden, inner),
            })
        else:  # full attention with an output gate (q projects to 2 x heads x dim)
            tensors.update({
                f"{b}.attn_q.weight": _w(rng, 2 * sh.heads * sh.head_dim, hidden),
                f"{b}.attn_k.weight": _w(rng, sh.kv_heads * sh.head_dim, hidden),
                f"{b}.attn_v.weight": _w(rng, sh.kv_heads * sh.head_dim, hidden),
                f"{b}.attn_output.weight": _w(rng, hidden, sh.heads * sh.head_dim),
                f"{b}.attn_q_norm.weight": _ones(sh.head_dim),
                f"{b}.attn_k_norm.weight": _ones(sh.head_dim),
            })
    for il in range(len(sh.recurrent)):
        tensors[f"blk.{il}.post_attention_norm.weight"] = _ones(hidden)
        tensors.update(_ffn(rng, il, hidden, sh.ff))
    for name, array in tensors.items():
        w.add_tensor(name, array)
    _finish(w)
    return path


def write_llama_model(path: Path, chat_template: str, seed: int = 0) -> Path:
    """A plain-attention ``llama`` model (two layers; its KV cache can be cut back) with the
    same tokenizer as :func:`write_text_model` and ``chat_template`` embedded."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_string("general.type", "model")
    w.add_name("llmux tiny llama")
    head = HIDDEN // HEADS
    for key, value in (("block_count", 2), ("context_length", 8192),
                       ("embedding_length", HIDDEN), ("feed_forward_length", FF),
                       ("attention.head_count", HEADS), ("attention.head_count_kv", KV_HEADS),
                       ("rope.dimension_count", head)):
        w.add_uint32(f"llama.{key}", value)
    w.add_float32("llama.rope.freq_base", 10000.0)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-6)
    w.add_uint32("general.file_type", 0)
    n_vocab = _tokenizer(w, "qwen2", chat_template)
    tensors = {"token_embd.weight": _w(rng, n_vocab, HIDDEN, scale=1.0),
               "output.weight": _w(rng, n_vocab, HIDDEN), "output_norm.weight": _ones(HIDDEN)}
    for il in (0, 1):
        tensors.update({
            f"blk.{il}.attn_norm.weight": _ones(HIDDEN),
            f"blk.{il}.attn_q.weight": _w(rng, HEADS * head, HIDDEN),
            f"blk.{il}.attn_k.weight": _w(rng, KV_HEADS * head, HIDDEN),
            f"blk.{il}.attn_v.weight": _w(rng, KV_HEADS * head, HIDDEN),
            f"blk.{il}.attn_output.weight": _w(rng, HIDDEN, HEADS * head),
            f"blk.{il}.ffn_norm.weight": _ones(HIDDEN),
            **_ffn(rng, il),
        })
    for name, array in tensors.items():
        w.add_tensor(name, array)
    _finish(w)
    return path


def _tokenizer(w, pre: str, chat_template: str) -> int:
    """Write the shared byte-level BPE (:func:`tokenizer`), its special tokens and the
    template; returns the vocabulary's size."""
    tokens, types, merges = tokenizer()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(tokens.index("<|im_end|>"))
    w.add_pad_token_id(tokens.index("<|endoftext|>"))
    w.add_add_bos_token(False)
    w.add_chat_template(chat_template)
    return len(tokens)


def _ffn(rng, il: int, hidden: int = HIDDEN, ff: int = FF) -> dict:
    """Layer ``il``'s SwiGLU feed-forward weights (gate, up, down, drawn in that order)."""
    return {f"blk.{il}.ffn_gate.weight": _w(rng, ff, hidden),
            f"blk.{il}.ffn_up.weight": _w(rng, ff, hidden),
            f"blk.{il}.ffn_down.weight": _w(rng, hidden, ff)}


def write_mmproj(path: Path, seed: int = 1) -> Path:
    """The ``qwen3vl_merger`` vision projector for :func:`write_text_model`'s model."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_string("general.type", "mmproj")
    w.add_name("llmux tiny qwen35 vision")
    w.add_uint32("general.file_type", 0)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_uint32("clip.vision.projection_dim", HIDDEN)
    w.add_uint32("clip.vision.image_size", PATCH * int(POSITIONS**0.5))
    w.add_uint32("clip.vision.patch_size", PATCH)
    w.add_uint32("clip.vision.embedding_length", VISION_HIDDEN)
    w.add_uint32("clip.vision.feed_forward_length", VISION_FF)
    w.add_uint32("clip.vision.block_count", 1)
    w.add_uint32("clip.vision.attention.head_count", 2)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    w.add_string("clip.projector_type", "qwen3vl_merger")
    w.add_bool("clip.use_gelu", True)
    w.add_uint32("clip.vision.spatial_merge_size", MERGE)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    w.add_array("clip.vision.is_deepstack_layers", [False])
    w.add_uint32("general.quantization_version", 2)
    vh, merged = VISION_HIDDEN, VISION_HIDDEN * MERGE * MERGE
    tensors = {
        "v.patch_embd.weight": _w(rng, vh, 3, PATCH, PATCH),
        "v.patch_embd.weight.1": _w(rng, vh, 3, PATCH, PATCH),
        "v.patch_embd.bias": _w(rng, vh),
        "v.position_embd.weight": _w(rng, POSITIONS, vh),
        "v.blk.0.ln1.weight": _ones(vh), "v.blk.0.ln1.bias": _w(rng, vh),
        "v.blk.0.attn_qkv.weight": _w(rng, 3 * vh, vh), "v.blk.0.attn_qkv.bias": _w(rng, 3 * vh),
        "v.blk.0.attn_out.weight": _w(rng, vh, vh), "v.blk.0.attn_out.bias": _w(rng, vh),
        "v.blk.0.ln2.weight": _ones(vh), "v.blk.0.ln2.bias": _w(rng, vh),
        "v.blk.0.ffn_up.weight": _w(rng, VISION_FF, vh),
        "v.blk.0.ffn_up.bias": _w(rng, VISION_FF),
        "v.blk.0.ffn_down.weight": _w(rng, vh, VISION_FF),
        "v.blk.0.ffn_down.bias": _w(rng, vh),
        "v.post_ln.weight": _ones(vh), "v.post_ln.bias": _w(rng, vh),
        "mm.0.weight": _w(rng, merged, merged), "mm.0.bias": _w(rng, merged),
        "mm.2.weight": _w(rng, HIDDEN, merged), "mm.2.bias": _w(rng, HIDDEN),
    }
    for name, array in tensors.items():
        w.add_tensor(name, array)
    _finish(w)
    return path


def _finish(w) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
