"""The qwen3.5-9b-fp8-uncensored GGUF pair at its real shape (see
:mod:`benchmarks.production_shapes`): the Q8_0 model with its full tokenizer metadata and
the BF16 mmproj, tensor data left as sparse holes."""

from __future__ import annotations

import math
from itertools import chain, islice
from pathlib import Path
from typing import Any

from llmux_transformers.checkpoint import Tensor

from .production_shapes import (
    QWEN35_9B,
    QWEN35_9B_VISION,
    QWEN_IDS,
    QWEN_SPECIALS,
    QWEN_SPECIALS_AT,
    _repeat_layer_types,
    _tiny_checkpoints,
)


def qwen35_gguf(model_path: Path, mmproj_path: Path) -> list[Tensor]:
    """HauhauCS's Qwen3.5-9B GGUF: arch ``qwen35`` in Q8_0 (norms, conv1d, A and dt bias in
    F32), its full tokenizer metadata (248,320 tokens, merges, the chat template), and the
    BF16 ``clip`` mmproj of the 9B vision tower.

    Size: the text model has 8.954 B parameters, 8.953 B of them in Q8_0 (34 bytes per 32
    weights) -> 9.512 GB, plus 1.06 M in F32 (4 MB) and 7.2 MB of metadata (the vocabulary
    and merges): 9.52 GB (published Q8_0 9B files: ~9.5 GB). The mmproj (0.456 B
    parameters, BF16 with F32 biases and norms) is 0.92 GB. No MTP layer (llama.cpp's
    converter has left it out)."""
    import gguf

    t = _repeat_layer_types(QWEN35_9B)
    h, ff, v = t["hidden_size"], t["intermediate_size"], t["vocab_size"]
    head, heads, kv = t["head_dim"], t["num_attention_heads"], t["num_key_value_heads"]
    k_heads, v_heads = t["linear_num_key_heads"], t["linear_num_value_heads"]
    inner = v_heads * t["linear_value_head_dim"]
    conv = inner + 2 * k_heads * t["linear_key_head_dim"]
    Q8, F32 = gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.F32
    infos = [("token_embd.weight", (v, h), Q8)]
    for i, kind in enumerate(t["layer_types"]):
        b = f"blk.{i}."
        infos.append((b + "attn_norm.weight", (h,), F32))
        if kind == "linear_attention":
            infos += [(b + "ssm_a", (v_heads,), F32),
                      (b + "ssm_conv1d.weight", (conv, t["linear_conv_kernel_dim"]), F32),
                      (b + "ssm_dt.bias", (v_heads,), F32),
                      (b + "ssm_alpha.weight", (v_heads, h), Q8),
                      (b + "ssm_beta.weight", (v_heads, h), Q8),
                      (b + "attn_qkv.weight", (conv, h), Q8),
                      (b + "attn_gate.weight", (inner, h), Q8),
                      (b + "ssm_norm.weight", (t["linear_value_head_dim"],), F32),
                      (b + "ssm_out.weight", (h, inner), Q8)]
        else:  # gated attention: q projects to 2 x heads x head_dim
            infos += [(b + "attn_q.weight", (2 * heads * head, h), Q8),
                      (b + "attn_k.weight", (kv * head, h), Q8),
                      (b + "attn_v.weight", (kv * head, h), Q8),
                      (b + "attn_output.weight", (h, heads * head), Q8),
                      (b + "attn_q_norm.weight", (head,), F32),
                      (b + "attn_k_norm.weight", (head,), F32)]
        infos += [(b + "post_attention_norm.weight", (h,), F32),
                  (b + "ffn_gate.weight", (ff, h), Q8), (b + "ffn_up.weight", (ff, h), Q8),
                  (b + "ffn_down.weight", (h, ff), Q8)]
    infos += [("output_norm.weight", (h,), F32), ("output.weight", (v, h), Q8)]

    w = gguf.GGUFWriter(str(model_path), "qwen35")
    a = "qwen35"
    w.add_string("general.type", "model")
    w.add_name("Qwen3.5 9B Uncensored HauhauCS Aggressive")
    w.add_size_label("9B")
    w.add_uint32(f"{a}.block_count", t["num_hidden_layers"])
    w.add_uint32(f"{a}.context_length", t["max_position_embeddings"])
    w.add_uint32(f"{a}.embedding_length", h)
    w.add_uint32(f"{a}.feed_forward_length", ff)
    w.add_uint32(f"{a}.attention.head_count", heads)
    w.add_uint32(f"{a}.attention.head_count_kv", kv)
    w.add_array(f"{a}.rope.dimension_sections",
                list(t["rope_parameters"]["mrope_section"]) + [0])
    w.add_float32(f"{a}.rope.freq_base", t["rope_parameters"]["rope_theta"])
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", t["rms_norm_eps"])
    w.add_uint32(f"{a}.attention.key_length", head)
    w.add_uint32(f"{a}.attention.value_length", head)
    w.add_uint32("general.file_type", gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_uint32(f"{a}.ssm.conv_kernel", t["linear_conv_kernel_dim"])
    w.add_uint32(f"{a}.ssm.state_size", t["linear_key_head_dim"])
    w.add_uint32(f"{a}.ssm.group_count", k_heads)
    w.add_uint32(f"{a}.ssm.time_step_rank", v_heads)
    w.add_uint32(f"{a}.ssm.inner_size", inner)
    w.add_array(f"{a}.attention.recurrent_layers",
                [kind == "linear_attention" for kind in t["layer_types"]])
    w.add_uint32(f"{a}.full_attention_interval", 4)
    w.add_uint32(f"{a}.rope.dimension_count",
                 int(head * t["rope_parameters"]["partial_rotary_factor"]))
    w.add_uint32("general.quantization_version", gguf.GGML_QUANT_VERSION)
    tokens, types, merges = _qwen35_vocabulary(v)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen35")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(QWEN_IDS["bos_token_id"])
    w.add_eos_token_id(QWEN_IDS["eos_token_id"][0])
    w.add_pad_token_id(QWEN_IDS["pad_token_id"])
    w.add_add_bos_token(False)
    w.add_chat_template(_tiny_checkpoints().template("qwen3_5"))
    tensors = _write_gguf(w, model_path, infos)
    return tensors + qwen35_mmproj(mmproj_path)


def qwen35_mmproj(path: Path) -> list[Tensor]:
    import gguf

    vis, text_hidden = QWEN35_9B_VISION, QWEN35_9B["hidden_size"]
    vh, ff, patch = vis["hidden_size"], vis["intermediate_size"], vis["patch_size"]
    merged = vh * vis["spatial_merge_size"] ** 2
    BF16, F16, F32 = (gguf.GGMLQuantizationType.BF16, gguf.GGMLQuantizationType.F16,
                      gguf.GGMLQuantizationType.F32)
    # The converter keeps the patch embedding (split per temporal frame) F16, positions F32.
    infos = [("v.patch_embd.weight", (vh, 3, patch, patch), F16),
             ("v.patch_embd.weight.1", (vh, 3, patch, patch), F16),
             ("v.patch_embd.bias", (vh,), F32),
             ("v.position_embd.weight", (vis["num_position_embeddings"], vh), F32)]
    for i in range(vis["depth"]):
        b = f"v.blk.{i}."
        infos += [(b + "ln1.weight", (vh,), F32), (b + "ln1.bias", (vh,), F32),
                  (b + "attn_qkv.weight", (3 * vh, vh), BF16),
                  (b + "attn_qkv.bias", (3 * vh,), F32),
                  (b + "attn_out.weight", (vh, vh), BF16), (b + "attn_out.bias", (vh,), F32),
                  (b + "ln2.weight", (vh,), F32), (b + "ln2.bias", (vh,), F32),
                  (b + "ffn_up.weight", (ff, vh), BF16), (b + "ffn_up.bias", (ff,), F32),
                  (b + "ffn_down.weight", (vh, ff), BF16), (b + "ffn_down.bias", (vh,), F32)]
    infos += [("v.post_ln.weight", (vh,), F32), ("v.post_ln.bias", (vh,), F32),
              ("mm.0.weight", (merged, merged), BF16), ("mm.0.bias", (merged,), F32),
              ("mm.2.weight", (text_hidden, merged), BF16), ("mm.2.bias", (text_hidden,), F32)]
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_string("general.type", "mmproj")
    w.add_name("Qwen3.5 9B Uncensored HauhauCS Aggressive")
    w.add_uint32("general.file_type", gguf.LlamaFileType.MOSTLY_BF16)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_uint32("clip.vision.projection_dim", text_hidden)
    w.add_uint32("clip.vision.image_size",
                 patch * int(math.isqrt(vis["num_position_embeddings"])))
    w.add_uint32("clip.vision.patch_size", patch)
    w.add_uint32("clip.vision.embedding_length", vh)
    w.add_uint32("clip.vision.feed_forward_length", ff)
    w.add_uint32("clip.vision.block_count", vis["depth"])
    w.add_uint32("clip.vision.attention.head_count", vis["num_heads"])
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    w.add_string("clip.projector_type", "qwen3vl_merger")
    w.add_bool("clip.use_gelu", True)
    w.add_uint32("clip.vision.spatial_merge_size", vis["spatial_merge_size"])
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    w.add_array("clip.vision.is_deepstack_layers", [False] * vis["depth"])
    w.add_uint32("general.quantization_version", gguf.GGML_QUANT_VERSION)
    return _write_gguf(w, path, infos)


def _write_gguf(w, path: Path, infos: list[tuple[str, tuple[int, ...], Any]]) -> list[Tensor]:
    """Header, metadata and tensor infos through GGUFWriter; the data a hole up to the end of
    the last tensor (each aligned as GGUFWriter aligns them). Shapes in numpy order."""
    import gguf
    import numpy as np

    size_of = {}
    for name, shape, qtype in infos:
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        size_of[name] = math.prod(shape) // block * type_size
        w.add_tensor_info(name, shape, np.dtype(np.float32), size_of[name], raw_dtype=qtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    start = w.ggml_pad(w.fout[0].tell(), w.data_alignment)
    w.close()
    end = start + sum(w.ggml_pad(n, w.data_alignment) for n in size_of.values())
    with open(path, "r+b") as f:
        f.truncate(end)
    return [Tensor(name, qtype.name, shape) for name, shape, qtype in infos]


def _qwen35_vocabulary(n_vocab: int) -> tuple[list[str], list[int], list[str]]:
    """248,320 tokens as llama.cpp's converter lays Qwen's out: byte-level BPE tokens (here
    the 256 byte characters, then generated pairs and triples, each with its merge), Qwen's
    special tokens from id 248,044 (control; ``<think>``-style tags user-defined), and the
    unused ids padded ``[PAD<id>]``. The strings are stand-ins; sizes and ids are real."""
    from gguf import TokenType
    from tokenizers import pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens, merges = list(alphabet), []
    pairs = ((a, b) for a in alphabet for b in alphabet)
    triples = ((a + b, c) for a in alphabet for b in alphabet for c in alphabet)
    for left, right in islice(chain(pairs, triples), QWEN_SPECIALS_AT - len(alphabet)):
        tokens.append(left + right)
        merges.append(f"{left} {right}")
    types = [TokenType.NORMAL] * len(tokens)
    for special in QWEN_SPECIALS:
        tokens.append(special)
        types.append(TokenType.CONTROL if special.startswith("<|") else TokenType.USER_DEFINED)
    pads = range(len(tokens), n_vocab)
    tokens += [f"[PAD{i}]" for i in pads]
    types += [TokenType.UNUSED] * len(pads)
    return tokens, [int(t) for t in types], merges
