"""Header-only checkpoints at the production shapes, for sizing tests.

Each is a folder with the published ``config.json`` values and safetensors files whose
headers name every tensor of the real checkpoint, with its dtype and shape; the data is a
sparse hole (``truncate``), so a 20 GB checkpoint costs a few hundred kB of disk. The tensor
names and shapes come from transformers' own model classes, built on the meta device, plus
what transformers has no module for (Qwen3.5's ``mtp.*`` head). The shapes are those of
/work/shared/notes/production-shapes.md.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

QWEN35_TEXT = {
    "4b": {"hidden_size": 2560, "intermediate_size": 9216, "tie_word_embeddings": True},
    "9b": {"hidden_size": 4096, "intermediate_size": 12288, "tie_word_embeddings": False},
}
QWEN35_VISION = {
    "4b": {"depth": 24, "hidden_size": 1024, "intermediate_size": 4096, "out_hidden_size": 2560},
    "9b": {"depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "out_hidden_size": 4096},
}
QWEN35_COMMON = {
    "vocab_size": 248320, "num_hidden_layers": 32, "num_attention_heads": 16,
    "num_key_value_heads": 4, "head_dim": 256, "linear_num_key_heads": 16,
    "linear_num_value_heads": 32, "linear_key_head_dim": 128, "linear_value_head_dim": 128,
    "linear_conv_kernel_dim": 4,
    "layer_types": (["linear_attention"] * 3 + ["full_attention"]) * 8,
    "max_position_embeddings": 262144,
}
GPT_OSS_20B = {
    "vocab_size": 201088, "hidden_size": 2880, "intermediate_size": 2880,
    "num_hidden_layers": 24, "num_attention_heads": 64, "num_key_value_heads": 8,
    "head_dim": 64, "num_local_experts": 32, "num_experts_per_tok": 4, "sliding_window": 128,
    "layer_types": ["sliding_attention", "full_attention"] * 12,
    "max_position_embeddings": 131072, "tie_word_embeddings": False,
}
# Qwen's own FP8 releases (and, assumed, lovedheart's): these stay BF16.
QWEN_FP8_BF16 = ("embed_tokens", "lm_head", "model.visual", "mtp.", "in_proj_a", "in_proj_b")
ST_DTYPE = {"torch.bfloat16": "BF16", "torch.float32": "F32", "torch.float16": "F16"}
ELEMENT = {"BF16": 2, "F16": 2, "F32": 4, "F8_E4M3": 1, "U8": 1}
SHARD_BYTES = 5 * 10**9


def write_header_only(folder: Path, tensors: dict[str, tuple[str, tuple[int, ...]]],
                      config: dict) -> Path:
    """``tensors``: name -> (safetensors dtype, shape), written as ~5 GB shards + index."""
    folder.mkdir(parents=True, exist_ok=True)
    shards: list[dict] = [{}]
    size = 0
    for name, (dtype, shape) in tensors.items():
        nbytes = math.prod(shape) * ELEMENT[dtype]
        if size + nbytes > SHARD_BYTES and shards[-1]:
            shards.append({})
            size = 0
        shards[-1][name] = (dtype, shape, nbytes)
        size += nbytes
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        file = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        header, offset = {"__metadata__": {"format": "pt"}}, 0
        for name, (dtype, shape, nbytes) in shard.items():
            header[name] = {"dtype": dtype, "shape": list(shape),
                            "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
            weight_map[name] = file
        raw = json.dumps(header).encode()
        with open(folder / file, "wb") as f:
            f.write(struct.pack("<Q", len(raw)) + raw)
            f.truncate(8 + len(raw) + offset)  # sparse: the data is never read
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    return folder


def _meta_state(model_cls, config) -> dict[str, tuple[str, tuple[int, ...]]]:
    import torch

    with torch.device("meta"):
        model = model_cls(config)
    tied = set(getattr(model, "all_tied_weights_keys", {}) or {})
    return {name: (ST_DTYPE[str(t.dtype)], tuple(t.shape))
            for name, t in model.state_dict().items() if name not in tied}


def qwen35(folder: Path, size: str, *, fp8: bool = False, mtp: bool = True) -> Path:
    """Qwen3.5-4B / -9B (``Qwen3_5ForConditionalGeneration``: text, vision, ``mtp.*``), in
    BF16 or in Qwen's block-wise FP8 layout (128x128 ``weight_scale_inv``)."""
    import torch
    from transformers import Qwen3_5Config, Qwen3_5ForConditionalGeneration

    text = {**QWEN35_COMMON, **QWEN35_TEXT[size]}
    vision = {**QWEN35_VISION[size], "num_heads": 16, "patch_size": 16,
              "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3,
              "num_position_embeddings": 2304}
    config = Qwen3_5Config(text_config=text, vision_config=vision,
                           tie_word_embeddings=text["tie_word_embeddings"])
    torch.set_default_dtype(torch.bfloat16)
    try:
        tensors = _meta_state(Qwen3_5ForConditionalGeneration, config)
    finally:
        torch.set_default_dtype(torch.float32)
    tensors = {k: ("BF16" if d == "F32" and "inv_freq" not in k else d, s)
               for k, (d, s) in tensors.items() if "inv_freq" not in k}
    if mtp:  # one full-attention decoder layer, its fc and norms (Qwen3-Next layout)
        hidden = text["hidden_size"]
        layer = "model.language_model.layers.3."
        for name, spec in list(tensors.items()):
            if name.startswith(layer):
                tensors["mtp.layers.0." + name[len(layer):]] = spec
        tensors["mtp.fc.weight"] = ("BF16", (hidden, 2 * hidden))
        for norm in ("norm", "pre_fc_norm_embedding", "pre_fc_norm_hidden"):
            tensors[f"mtp.{norm}.weight"] = ("BF16", (hidden,))
    saved = config.to_dict()
    saved["architectures"] = ["Qwen3_5ForConditionalGeneration"]
    if fp8:
        tensors = _to_fp8_layout(tensors)
        saved["quantization_config"] = {
            "quant_method": "fp8", "activation_scheme": "dynamic",
            "weight_block_size": [128, 128], "modules_to_not_convert": list(QWEN_FP8_BF16)}
    return write_header_only(folder, tensors, saved)


def _to_fp8_layout(tensors: dict) -> dict:
    out = {}
    for name, (dtype, shape) in tensors.items():
        linear = name.endswith(".weight") and len(shape) == 2 and ".layers." in name
        if linear and not any(k in name for k in QWEN_FP8_BF16):
            out[name] = ("F8_E4M3", shape)
            out[name[: -len("weight")] + "weight_scale_inv"] = (
                "F32", (math.ceil(shape[0] / 128), math.ceil(shape[1] / 128)))
        else:
            out[name] = (dtype, shape)
    return out


def gpt_oss_20b(folder: Path, *, mxfp4: bool = True, stale_config: bool = False) -> Path:
    """openai/gpt-oss-20b: MXFP4 experts (``*_blocks``/``*_scales``) or, as fine-tunes are
    often saved, BF16 experts; ``stale_config`` keeps the original's quantization_config on
    BF16 experts."""
    import torch
    from transformers import GptOssConfig, GptOssForCausalLM

    config = GptOssConfig(**GPT_OSS_20B)
    torch.set_default_dtype(torch.bfloat16)
    try:
        tensors = _meta_state(GptOssForCausalLM, config)
    finally:
        torch.set_default_dtype(torch.float32)
    tensors = {k: ("BF16", s) for k, (d, s) in tensors.items() if "inv_freq" not in k}
    saved = config.to_dict()
    saved["architectures"] = ["GptOssForCausalLM"]
    if mxfp4:
        out = {}
        for name, (dtype, shape) in tensors.items():
            if name.endswith(("mlp.experts.gate_up_proj", "mlp.experts.down_proj")):
                experts, cols, rows = shape  # transformers keeps (E, in, out)
                out[name + "_blocks"] = ("U8", (experts, rows, cols // 32, 16))
                out[name + "_scales"] = ("U8", (experts, rows, cols // 32))
            else:
                out[name] = (dtype, shape)
        tensors = out
    if mxfp4 or stale_config:
        saved["quantization_config"] = {
            "quant_method": "mxfp4",
            "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                       "model.embed_tokens", "lm_head"]}
    return write_header_only(folder, tensors, saved)
