"""Random-weight models at the production shapes, for ``benchmarks.gpu_check``.

The shapes are the published ``config.json`` values of the production checkpoints, written
here because the GPU machine has no network. Weights are random (N(0, 0.02); the gpt-oss
experts as random MXFP4 blocks with small exponents), written as sharded safetensors with an
index, like a download. Built on the device itself, so it takes seconds, not minutes.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

from .harness import REPO

# Qwen3.5-4B (text tower; model_type qwen3_5_text): hybrid Gated DeltaNet + gated attention,
# one full-attention layer in four.
QWEN35_4B = {
    "vocab_size": 248320, "hidden_size": 2560, "intermediate_size": 9216,
    "num_hidden_layers": 32, "num_attention_heads": 16, "num_key_value_heads": 4,
    "head_dim": 256, "linear_num_key_heads": 16, "linear_num_value_heads": 32,
    "linear_key_head_dim": 128, "linear_value_head_dim": 128, "linear_conv_kernel_dim": 4,
    "layer_types": ["linear_attention"] * 3 + ["full_attention"],  # repeated to the depth
    "max_position_embeddings": 262144, "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000000.0,
                        "partial_rotary_factor": 0.25, "mrope_section": [11, 11, 10],
                        "mrope_interleaved": True},
}
# openai/gpt-oss-20b: 24 layers, 32 experts (4 per token), MXFP4 experts.
GPT_OSS_20B = {
    "vocab_size": 201088, "hidden_size": 2880, "intermediate_size": 2880,
    "num_hidden_layers": 24, "num_attention_heads": 64, "num_key_value_heads": 8,
    "head_dim": 64, "num_local_experts": 32, "num_experts_per_tok": 4,
    "sliding_window": 128, "layer_types": ["sliding_attention", "full_attention"],
    "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "swiglu_limit": 7.0,
    "tie_word_embeddings": False,
    "rope_parameters": {"rope_type": "yarn", "rope_theta": 150000.0, "factor": 32.0,
                        "beta_fast": 32.0, "beta_slow": 1.0, "truncate": False,
                        "original_max_position_embeddings": 4096},
}
# The dry run: the same keys, tiny.
TINY = {
    "qwen3.5-4b": {"vocab_size": 0, "hidden_size": 64, "intermediate_size": 128,
                   "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "head_dim": 32, "linear_num_key_heads": 2, "linear_num_value_heads": 4,
                   "linear_key_head_dim": 16, "linear_value_head_dim": 16,
                   "max_position_embeddings": 4096,
                   "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                       "partial_rotary_factor": 0.25,
                                       "mrope_section": [2, 1, 1], "mrope_interleaved": True}},
    "gpt-oss-20b": {"vocab_size": 0, "hidden_size": 64, "intermediate_size": 64,
                    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                    "head_dim": 16, "num_local_experts": 4, "num_experts_per_tok": 2,
                    "max_position_embeddings": 4096},
}
MXFP4_SKIP = ("self_attn", "router", "embed_tokens", "lm_head")
GB = 1024**3


# --------------------------------------------------------------------------- building


def _tiny_checkpoints():
    """The transformers plugin's test helpers: a trained tokenizer and the chat templates."""
    path = REPO / "plugins" / "llmux_transformers" / "tests" / "tiny_checkpoints.py"
    spec = importlib.util.spec_from_file_location("llmux_gpu_check_tiny", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(name: str, folder: Path, device: str, tiny: bool) -> dict:
    """Write a random-weight checkpoint of ``name`` to ``folder``; return what was built."""
    import torch
    from safetensors.torch import save_file

    t0 = time.perf_counter()
    helpers = _tiny_checkpoints()
    tok = helpers.train_tokenizer()
    qwen = name.startswith("qwen")
    values = dict(QWEN35_4B if qwen else GPT_OSS_20B)
    if tiny:
        values.update(TINY[name])
    if not values["vocab_size"]:
        values["vocab_size"] = len(tok)
    depth = values["num_hidden_layers"]
    pattern = values["layer_types"]
    values["layer_types"] = (pattern * depth)[:depth]
    specials = helpers._ids(tok, "<|im_end|>", "<|endoftext|>") if qwen else helpers._ids(
        tok, "<|return|>", "<|call|>")
    pad = helpers._ids(tok, "<|endoftext|>")[0]
    if qwen:
        from transformers import Qwen3_5ForCausalLM as Model
        from transformers import Qwen3_5TextConfig as Config

        config = Config(**values, eos_token_id=specials[0], pad_token_id=pad)
    else:
        from transformers import GptOssConfig as Config
        from transformers import GptOssForCausalLM as Model

        config = Config(**values, eos_token_id=specials, pad_token_id=pad)
    with torch.device("meta"):
        shapes = {k: (tuple(v.shape), v.dtype) for k, v in Model(config).state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator(device=device).manual_seed(0)
    shard, shard_bytes, index, n_shard, total = {}, 0, {}, 0, 0
    params = 0

    def flush():
        nonlocal shard, shard_bytes, n_shard
        if shard:
            n_shard += 1
            fname = f"model-{n_shard:05d}.safetensors"
            save_file({k: v.cpu() for k, v in shard.items()}, folder / fname,
                      metadata={"format": "pt"})
            index.update({k: fname for k in shard})
            shard, shard_bytes = {}, 0

    mxfp4 = not qwen
    for key, (shape, _) in shapes.items():
        params += _numel(shape)
        if mxfp4 and key.endswith(("mlp.experts.gate_up_proj", "mlp.experts.down_proj")):
            experts, cols, rows = shape  # transformers keeps (E, in, out)
            tensors = {
                key + "_blocks": torch.randint(0, 256, (experts, rows, cols // 32, 16),
                                               dtype=torch.uint8, device=device, generator=gen),
                key + "_scales": torch.randint(118, 124, (experts, rows, cols // 32),
                                               dtype=torch.uint8, device=device, generator=gen),
            }
        elif "norm" in key and len(shape) == 1:
            tensors = {key: torch.ones(shape, dtype=torch.bfloat16, device=device)}
        else:
            t = torch.empty(shape, dtype=torch.bfloat16, device=device)
            t.normal_(0.0, 0.02, generator=gen)
            tensors = {key: t}
        for k, t in tensors.items():
            shard[k] = t
            size = t.numel() * t.element_size()
            shard_bytes += size
            total += size
        if shard_bytes >= 2 * GB:
            flush()
    flush()
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": index}, indent=1))
    saved = config.to_dict()
    saved["architectures"] = [Model.__name__]
    saved["torch_dtype"] = "bfloat16"
    if mxfp4:
        saved["quantization_config"] = {
            "quant_method": "mxfp4",
            "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                       "model.embed_tokens", "lm_head"]}
    (folder / "config.json").write_text(json.dumps(saved, indent=2))
    helpers.save_tokenizer(tok, folder, "qwen3_5" if qwen else "gpt_oss")
    helpers._generation_config(folder, specials, pad)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return {"params": params, "bytes": total, "seconds": time.perf_counter() - t0,
            "layers": depth, "hidden": values["hidden_size"], "vocab": values["vocab_size"]}


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
