"""The nine production checkpoints at their published shapes, with every byte of data a hole.

    python -m benchmarks.production_shapes DIR [--only qwen3.5-4b,gpt-oss-20b]

:func:`build_all` writes each physical model of ``config/models.yaml`` into
``DIR/<path>``, under the file names its plugin reads (``options.model_file`` /
``mmproj_file`` for llama.cpp, the variant's file list in ``llmux_chatterbox.variants``).
Every header is real: safetensors JSON headers with each tensor's name, dtype, shape and
offsets, GGUF metadata, vocabulary and tensor infos. The data after the header is a sparse
hole (``truncate``), so ~100 GB of apparent size costs a few MB of disk and seconds of time.
What they are good for: every estimator, planner and ``check-config`` path that reads files
(sizes, headers, metadata) sees exactly what it would see on the production machine. Loading
one reads zeros, not weights (and the ``.pt`` files do not unpickle).

Where the names and shapes come from:

- transformers checkpoints: the installed classes, built on the meta device from the
  published config values, their state dict renamed the way ``save_pretrained`` renames it
  (tied weights dropped, ``revert_weight_conversion``), plus what the checkpoint holds and
  transformers never loads (Qwen3.5's ``mtp.*`` head, Cohere's ``preprocessor.featurizer``);
  quantised layouts (block-wise FP8, MXFP4) derived from those shapes.
- the qwen35 GGUF and its mmproj: the tensor names and metadata keys llama.cpp's converter
  writes (as in ``plugins/llmux_llamacpp/tests/llamacpp_tiny.py``), at the 9B shapes.
- Chatterbox: chatterbox's own ``T3`` / ``S3Gen`` / ``VoiceEncoder`` on the meta device.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import struct
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from llmux_transformers.checkpoint import DTYPE_BYTES, Tensor

from .gpu_models import GPT_OSS_20B, QWEN35_4B
from .harness import REPO

GB = 10**9
GiB = 1024**3

# --------------------------------------------------------------------------- published shapes

# Qwen3.5-9B: the 4B's text values (benchmarks/gpu_models.py) wider and untied.
QWEN35_9B = {**QWEN35_4B, "hidden_size": 4096, "intermediate_size": 12288,
             "tie_word_embeddings": False}
_VISION = {"num_heads": 16, "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2,
           "in_channels": 3, "num_position_embeddings": 2304, "hidden_act": "gelu_pytorch_tanh"}
QWEN35_9B_VISION = {**_VISION, "depth": 27, "hidden_size": 1152, "intermediate_size": 4304,
                    "out_hidden_size": 4096}
QWEN35_4B_VISION = {**_VISION, "depth": 24, "hidden_size": 1024, "intermediate_size": 4096,
                    "out_hidden_size": 2560}
# Qwen's special tokens (Qwen3's list, moved to 248,044 in the 248,320-token vocabulary: the
# ids Qwen3_5Config's defaults name, e.g. <|vision_start|> 248053, <|image_pad|> 248056).
QWEN_SPECIALS_AT = 248044
QWEN_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
]
# The image processor the Qwen3.5 repositories name (Qwen3-VL's): 16-pixel patches merged
# 2x2, between 256 and 65,536 merged tokens an image.
QWEN35_IMAGE_PROCESSOR = {
    "image_processor_type": "Qwen2VLImageProcessorFast", "processor_class": "Qwen3VLProcessor",
    "patch_size": 16, "temporal_patch_size": 2, "merge_size": 2,
    "size": {"shortest_edge": 65536, "longest_edge": 16777216},
    "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
    "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "do_resize": True,
}
QWEN_IDS = {"bos_token_id": 248044, "eos_token_id": [248046, 248044], "pad_token_id": 248044}
GPT_OSS_IDS = {"bos_token_id": 199998, "eos_token_id": [200002, 199999, 200012],
               "pad_token_id": 199999}
FP8_BLOCK = 128
# Linear layers of the Qwen3.5 decoder stored FP8; the rest (embeddings, lm_head, norms,
# vision tower, linear attention's in_proj_a/in_proj_b, conv1d, A_log, dt_bias, mtp) BF16.
FP8_LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "linear_attn.in_proj_qkv",
               "linear_attn.in_proj_z", "linear_attn.out_proj")
# openai/gpt-oss-20b's quantization_config (also written by benchmarks/gpu_models.py).
MXFP4_NOT_CONVERTED = ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                       "model.embed_tokens", "lm_head"]
SHARD_BYTES = 5 * GB  # huggingface_hub's classic max_shard_size
# openai/gpt-oss-20b ships model-00000..00002-of-00002 at 4.79 + 4.80 + 4.17 GB.
GPT_OSS_SHARD_BYTES = int(4.84 * GB)  # -> 4.83 + 4.78 + 4.15 GB
# Cohere Transcribe keeps NeMo's mel filterbank and window (128 mels, 512-point FFT, 25 ms).
COHERE_FEATURIZER = {"preprocessor.featurizer.fb": (1, 128, 257),
                     "preprocessor.featurizer.window": (400,)}
TORCH_TO_ST = {"torch.float32": "F32", "torch.bfloat16": "BF16", "torch.float16": "F16",
               "torch.int64": "I64", "torch.int32": "I32", "torch.uint8": "U8",
               "torch.bool": "BOOL"}


# --------------------------------------------------------------------------- sparse files


def _natural(name: str) -> list:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in name.split(".")]


def write_safetensors(path: Path, tensors: Iterable[Tensor],
                      metadata: dict[str, str] | None = None) -> int:
    """A safetensors file whose data is a hole; returns its (apparent) size. Tensors are laid
    out widest dtype first, so every offset is aligned; the header is padded to 8 bytes with
    spaces, as the safetensors library does."""
    header: dict[str, Any] = {"__metadata__": metadata or {"format": "pt"}}
    offset = 0
    for t in sorted(tensors, key=lambda t: (-DTYPE_BYTES[t.dtype], _natural(t.name))):
        size = int(t.nbytes)
        header[t.name] = {"dtype": t.dtype, "shape": list(t.shape),
                          "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return _sparse(path, struct.pack("<Q", len(raw)) + raw, offset)


def _sparse(path: Path, head: bytes, hole: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(len(head) + hole)
    return len(head) + hole


def write_shards(folder: Path, tensors: list[Tensor], max_bytes: int = SHARD_BYTES,
                 first: int = 1) -> dict[str, int]:
    """``model-NNNNN-of-MMMMM.safetensors`` filled greedily to ``max_bytes`` in state-dict
    order, plus ``model.safetensors.index.json`` (one ``model.safetensors`` if it all fits)."""
    shards: list[list[Tensor]] = [[]]
    size = 0
    for t in sorted(tensors, key=lambda t: _natural(t.name)):
        if shards[-1] and size + t.nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += t.nbytes
    if len(shards) == 1:
        return {"model.safetensors": write_safetensors(folder / "model.safetensors", shards[0])}
    files, weight_map = {}, {}
    last = first + len(shards) - 1
    for i, shard in enumerate(shards, first):
        name = f"model-{i:05d}-of-{last:05d}.safetensors"
        files[name] = write_safetensors(folder / name, shard)
        weight_map.update({t.name: name for t in shard})
    total = int(sum(t.nbytes for t in tensors))
    files["model.safetensors.index.json"] = _write_json(
        folder / "model.safetensors.index.json",
        {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})
    return files


def _write_json(path: Path, value: Any) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")
    return path.stat().st_size


# --------------------------------------------------------------------------- transformers


def meta_tensors(model_cls, config, float_dtype: str = "BF16") -> list[Tensor]:
    """What ``save_pretrained`` would write for ``model_cls(config)``: built on the meta
    device, tied weights dropped and the weight renamings reverted, as transformers does
    before it writes; float tensors stored as ``float_dtype``."""
    import torch
    from transformers.core_model_loading import revert_weight_conversion
    from transformers.modeling_utils import remove_tied_weights_from_state_dict

    with torch.device("meta"):
        model = model_cls(config)
    state = remove_tied_weights_from_state_dict(model.state_dict(), model)
    return _as_tensors(revert_weight_conversion(model, state), float_dtype)


def _as_tensors(state: dict, float_dtype: str | None) -> list[Tensor]:
    """Safetensors entries of a (meta) state dict; float tensors as ``float_dtype``."""
    return [Tensor(name, float_dtype if float_dtype and t.is_floating_point()
                   else TORCH_TO_ST[str(t.dtype)], tuple(t.shape)) for name, t in state.items()]


def _repeat_layer_types(values: dict) -> dict:
    out = dict(values)
    depth = out["num_hidden_layers"]
    out["layer_types"] = (list(out["layer_types"]) * depth)[:depth]
    return out


def _save_config(folder: Path, config, architecture: str, **extra) -> int:
    saved = config.to_dict()  # every value, as real checkpoints (estimators read them)
    saved.update(architectures=[architecture], dtype="bfloat16", **extra)
    return _write_json(folder / "config.json", saved)


def _plugin_tests(plugin: str, module: str):
    """A helper module of a plugin's tests (the builders of the tiny checkpoints)."""
    path = REPO / "plugins" / plugin / "tests" / f"{module}.py"
    spec = importlib.util.spec_from_file_location(f"llmux_production_{module}", path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


@cache
def _tiny_checkpoints():
    return _plugin_tests("llmux_transformers", "tiny_checkpoints")


@cache
def _stand_in_tokenizer():
    """A small trained tokenizer (not the real vocabulary) with the chat-template tokens: it
    makes the folders' tokenizer files loadable, cheaply."""
    return _tiny_checkpoints().train_tokenizer()


def _tokenizer_and_generation(folder: Path, family: str, ids: dict, **sampling) -> None:
    _tiny_checkpoints().save_tokenizer(_stand_in_tokenizer(), folder, family)
    _write_json(folder / "generation_config.json", {**ids, **sampling})


def qwen35(folder: Path, text: dict, vision: dict, *, fp8: bool) -> list[Tensor]:
    """Qwen3.5 as ``Qwen3_5ForConditionalGeneration`` saves it (text + vision tower) plus the
    ``mtp.*`` head; BF16, or lovedheart's block-wise FP8 (128x128 ``weight_scale_inv``)."""
    import torch
    from transformers import Qwen3_5Config, Qwen3_5ForConditionalGeneration
    from transformers.models.qwen3_5.modeling_qwen3_5 import Qwen3_5DecoderLayer

    text = {**_repeat_layer_types(text), "eos_token_id": QWEN_IDS["pad_token_id"]}
    config = Qwen3_5Config(text_config=text, vision_config=vision,
                           tie_word_embeddings=text["tie_word_embeddings"])
    tensors = meta_tensors(Qwen3_5ForConditionalGeneration, config)
    # The multi-token-prediction head: one full-attention decoder layer, the fc that joins
    # the embedding and the hidden state (2 x hidden -> hidden) and three norms.
    hidden = text["hidden_size"]
    full = config.text_config.layer_types.index("full_attention")
    with torch.device("meta"):
        layer = Qwen3_5DecoderLayer(config.text_config, full)
    mtp = [Tensor(f"mtp.layers.0.{t.name}", t.dtype, t.shape)
           for t in _as_tensors(layer.state_dict(), "BF16")]
    mtp.append(Tensor("mtp.fc.weight", "BF16", (hidden, 2 * hidden)))
    mtp += [Tensor(f"mtp.{n}.weight", "BF16", (hidden,))
            for n in ("norm", "pre_fc_norm_embedding", "pre_fc_norm_hidden")]
    tensors += mtp
    text_extra = {"mtp_num_hidden_layers": 1, "mtp_use_dedicated_embeddings": False,
                  "attn_output_gate": True, "full_attention_interval": 4, "dtype": "bfloat16"}
    extra: dict[str, Any] = {}
    if fp8:
        tensors = _fp8_layout(tensors)
        extra["quantization_config"] = {
            "quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
            "weight_block_size": [FP8_BLOCK, FP8_BLOCK],
            "modules_to_not_convert": ["lm_head", "model.language_model.embed_tokens",
                                       "model.visual", "mtp"] + [
                f"model.language_model.layers.{i}.linear_attn.{p}"
                for i, kind in enumerate(config.text_config.layer_types)
                if kind == "linear_attention" for p in ("in_proj_a", "in_proj_b")]}
    folder.mkdir(parents=True, exist_ok=True)
    write_shards(folder, tensors)
    saved = config.to_dict()
    saved["text_config"].update(text_extra)
    saved.update(architectures=["Qwen3_5ForConditionalGeneration"], dtype="bfloat16", **extra)
    _write_json(folder / "config.json", saved)
    _write_json(folder / "preprocessor_config.json", QWEN35_IMAGE_PROCESSOR)
    _tokenizer_and_generation(folder, "qwen3_5", QWEN_IDS, do_sample=True, temperature=0.6,
                              top_k=20, top_p=0.95)
    return tensors


def _fp8_layout(tensors: list[Tensor]) -> list[Tensor]:
    out = []
    for t in tensors:
        if t.name.startswith("model.language_model.layers.") and t.name.endswith(
                tuple(f"{m}.weight" for m in FP8_LINEARS)):
            rows, cols = t.shape
            out.append(Tensor(t.name, "F8_E4M3", t.shape))
            out.append(Tensor(t.name[: -len("weight")] + "weight_scale_inv", "F32",
                              (math.ceil(rows / FP8_BLOCK), math.ceil(cols / FP8_BLOCK))))
        else:
            out.append(t)
    return out


def gpt_oss(folder: Path, *, mxfp4: bool) -> list[Tensor]:
    """gpt-oss-20b: MXFP4 experts (``*_blocks`` (E, out, in/32, 16), ``*_scales``
    (E, out, in/32), U8) as openai ships it, or every tensor BF16 as the public BF16
    conversions (and fine-tunes) store it."""
    from transformers import GptOssConfig, GptOssForCausalLM

    config = GptOssConfig(**_repeat_layer_types(GPT_OSS_20B), eos_token_id=200002,
                          pad_token_id=GPT_OSS_IDS["pad_token_id"])
    tensors = meta_tensors(GptOssForCausalLM, config)
    extra = {}
    if mxfp4:
        out = []
        for t in tensors:
            if t.name.endswith(("mlp.experts.gate_up_proj", "mlp.experts.down_proj")):
                experts, cols, rows = t.shape  # transformers keeps (E, in, out)
                out.append(Tensor(t.name + "_blocks", "U8", (experts, rows, cols // 32, 16)))
                out.append(Tensor(t.name + "_scales", "U8", (experts, rows, cols // 32)))
            else:
                out.append(t)
        tensors = out
        extra["quantization_config"] = {"quant_method": "mxfp4",
                                        "modules_to_not_convert": MXFP4_NOT_CONVERTED}
    folder.mkdir(parents=True, exist_ok=True)
    if mxfp4:  # openai numbers its shards from 0
        write_shards(folder, tensors, GPT_OSS_SHARD_BYTES, first=0)
    else:
        write_shards(folder, tensors)
    _save_config(folder, config, "GptOssForCausalLM", **extra)
    _tokenizer_and_generation(folder, "gpt_oss", GPT_OSS_IDS, do_sample=True)
    return tensors


def cohere_asr(folder: Path) -> list[Tensor]:
    """Cohere Transcribe: ``CohereAsrConfig``'s defaults (2.07 B parameters) in BF16, under
    the NeMo names the checkpoint keeps (transformers renames them on load), plus the
    featurizer buffers transformers ignores; the processor files (feature extractor and a
    small stand-in tokenizer) so ``AutoProcessor`` loads the folder."""
    from transformers import (
        CohereAsrConfig,
        CohereAsrFeatureExtractor,
        CohereAsrForConditionalGeneration,
        CohereAsrProcessor,
    )

    config = CohereAsrConfig(decoder_start_token_id=4)
    tensors = [Tensor(t.name.removeprefix("model."), t.dtype, t.shape)
               for t in meta_tensors(CohereAsrForConditionalGeneration, config)]
    tensors += [Tensor(name, "F32", shape) for name, shape in COHERE_FEATURIZER.items()]
    folder.mkdir(parents=True, exist_ok=True)
    write_shards(folder, tensors)
    _save_config(folder, config, "CohereAsrForConditionalGeneration")
    _write_json(folder / "generation_config.json", {
        "bos_token_id": 4, "eos_token_id": 3, "pad_token_id": 2, "decoder_start_token_id": 4})
    tokenizer = _plugin_tests("llmux_transformers", "tiny_asr").build_tokenizer()
    CohereAsrProcessor(CohereAsrFeatureExtractor(), tokenizer).save_pretrained(folder)
    return tensors


# --------------------------------------------------------------------------- all nine


def _builders() -> dict[str, Callable[[Path, dict], list[Tensor]]]:
    from . import production_chatterbox, production_gguf

    chatterbox = production_chatterbox.chatterbox

    return {
        "qwen3.5-9b-fp8": lambda d, o: qwen35(d, QWEN35_9B, QWEN35_9B_VISION, fp8=True),
        "qwen3.5-9b-fp8-uncensored": lambda d, o: production_gguf.qwen35_gguf(
            d / o["model_file"], d / o["mmproj_file"]),
        "qwen3.5-4b": lambda d, o: qwen35(d, QWEN35_4B, QWEN35_4B_VISION, fp8=False),
        "gpt-oss-20b": lambda d, o: gpt_oss(d, mxfp4=True),
        "gpt-oss-20b-uncensored": lambda d, o: gpt_oss(d, mxfp4=False),
        "cohere-transcribe": lambda d, o: cohere_asr(d),
        "chatterbox": lambda d, o: chatterbox(d, o["variant"]),
        "chatterbox-turbo": lambda d, o: chatterbox(d, o["variant"]),
        "chatterbox-multilingual": lambda d, o: chatterbox(d, o["variant"]),
    }


def production_models() -> dict[str, dict]:
    """config/models.yaml's physical models (path, options)."""
    return yaml.safe_load((REPO / "config" / "models.yaml").read_text())["physical"]


def build_all(models_dir: Path, only: Iterable[str] | str | None = None) -> dict[str, dict]:
    """Write the production models (all nine, or those named in ``only``: names or one
    comma-separated string) under ``models_dir``; return, per model: its folder (``path``),
    each file's apparent size (``files``), their total (``bytes``), the number of tensors
    written (``tensors``; for the multilingual Chatterbox those of its ``.pt`` files too)
    and the seconds it took (``seconds``; the first model pays the imports)."""
    models_dir = Path(models_dir)
    physical = production_models()
    builders = _builders()
    if set(physical) != set(builders):
        raise RuntimeError(f"config/models.yaml's physical models {sorted(physical)} are not "
                           f"the ones this builder knows {sorted(builders)}: update it")
    names = list(physical) if only is None else (
        [n.strip() for n in only.split(",") if n.strip()] if isinstance(only, str) else list(only))
    unknown = [n for n in names if n not in physical]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(physical)}")
    out = {}
    with warnings.catch_warnings():
        # Library noise while the classes are built (missing fast kernels, deprecations).
        warnings.simplefilter("ignore")
        for name in names:
            t0 = time.perf_counter()
            spec = physical[name]
            folder = models_dir / spec["path"]
            tensors = builders[name](folder, spec.get("options") or {})
            files = {str(p.relative_to(folder)): p.stat().st_size
                     for p in sorted(folder.rglob("*")) if p.is_file()}
            out[name] = {"path": str(folder), "files": files, "bytes": sum(files.values()),
                         "tensors": len(tensors), "seconds": round(time.perf_counter() - t0, 2)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.production_shapes",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("models_dir", type=Path)
    p.add_argument("--only", help="comma-separated physical model names")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    try:
        built = build_all(args.models_dir, args.only)
    except ValueError as exc:
        p.error(str(exc))
    disk = 0
    print(f"{'model':28} {'files':>5} {'apparent':>10} {'tensors':>7} {'s':>6}")
    for name, info in built.items():
        disk += sum(Path(info["path"], f).stat().st_blocks * 512 for f in info["files"])
        print(f"{name:28} {len(info['files']):5} {info['bytes'] / GB:8.2f}GB "
              f"{info['tensors']:7} {info['seconds']:6.1f}")
    total = sum(i["bytes"] for i in built.values())
    print(f"{len(built)} models, {total / GB:.1f} GB apparent, {disk / 1e6:.1f} MB on disk, "
          f"{time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
