"""Tiny random-weight chat checkpoints of the production architectures, built with
transformers (Qwen3.5 text, vision and block-wise FP8; gpt-oss, MXFP4 too).

Every builder writes a folder that ``from_pretrained`` (and so the plugin) loads like a real
checkpoint: ``config.json``, safetensors, a tokenizer trained here and a chat template that
renders as the real one does. Sizes are a few hundred kB; building all of them takes seconds.
torch and transformers are imported by the builders, not by this module.

The chat templates are the chat-format suite's (``tests/chatformats/templates`` of an llmux
checkout, where this plugin is installed from): :func:`template` says so when they are not
there.
"""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]  # plugins/llmux_transformers/llmux_transformers/tiny
TEMPLATES = REPO / "tests" / "chatformats" / "templates"

QWEN_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>",
]
QWEN_TAGS = [  # added tokens, not special: kept by skip_special_tokens, as in Qwen's tokenizer
    "<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>",
    "</tool_response>",
]
HARMONY_SPECIALS = [
    "<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>", "<|return|>",
    "<|call|>",
]
CORPUS = """\
The weather in Paris is sunny today. What is the weather like in Berlin?
Let me think about this step by step. The user asks about the weather, so I should call
the get_weather function with the city parameter. I will answer briefly and clearly.
<tool_call>
<function=get_weather>
<parameter=city>
Paris
</parameter>
</function>
</tool_call>
{"city": "Paris", "unit": "celsius", "days": 3}
You are a helpful assistant. Knowledge cutoff: 2024-06 Current date: 2026-11-26
Reasoning: low medium high. # Valid channels: analysis, commentary, final.
Channel must be included for every message. Calls to these tools must go to the
commentary channel: 'functions'. # Tools ## functions namespace functions { type
get_weather = (_: { city: string, }) => any; } // namespace functions # Instructions
user system assistant developer tool analysis final commentary to=functions json
Describe this image. It shows a red square. 0123456789 !?.,;:'"()[]{}<>=+-*/_\\|#@$%&
"""


# --------------------------------------------------------------------------- tokenizer


def train_tokenizer(vocab_size: int = 600):
    """A byte-level BPE with Qwen's pre-tokenizer, so ``Qwen3_5Tokenizer`` (which rebuilds
    the pre-tokenizer from ``config.json``'s model type) tokenises exactly as trained."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from transformers.models.qwen3_5.tokenization_qwen3_5 import PRETOKENIZE_REGEX

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=QWEN_SPECIALS + HARMONY_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS.splitlines(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    fast.add_tokens(QWEN_TAGS)
    return fast


# --------------------------------------------------------------------------- templates


def template(name: str) -> str:
    """The chat-formats suite's test template for ``name`` (qwen3_5 / gpt_oss): written to
    render as the real Qwen3.5 and gpt-oss templates do."""
    path = TEMPLATES / f"{name}.jinja"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the tiny checkpoints take their chat templates from an llmux "
            "checkout's tests/chatformats/templates (install this plugin from one, with -e)")
    return path.read_text()


def save_tokenizer(tok, folder: Path, family: str) -> None:
    tok.chat_template = template(family)
    if family == "gpt_oss":
        tok.eos_token = "<|return|>"
    tok.save_pretrained(folder)


def _ids(tok, *tokens: str) -> list[int]:
    return [tok.convert_tokens_to_ids(t) for t in tokens]


# --------------------------------------------------------------------------- qwen3_5


def qwen_text_config(tok):
    from transformers import Qwen3_5TextConfig

    return Qwen3_5TextConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        layer_types=["linear_attention", "full_attention"], num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, linear_key_head_dim=16, linear_value_head_dim=16,
        linear_num_key_heads=2, linear_num_value_heads=4, linear_conv_kernel_dim=4,
        max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                         "partial_rotary_factor": 0.25, "mrope_section": [2, 1, 1],
                         "mrope_interleaved": True},
        eos_token_id=_ids(tok, "<|im_end|>")[0], pad_token_id=_ids(tok, "<|endoftext|>")[0],
        tie_word_embeddings=False,
    )


def _generation_config(folder: Path, eos: list[int], pad: int) -> None:
    (folder / "generation_config.json").write_text(json.dumps(
        {"eos_token_id": eos, "pad_token_id": pad, "do_sample": False}
    ))


def build_qwen_text(folder: Path, tok, *, seed: int = 0) -> Path:
    import torch
    from transformers import Qwen3_5ForCausalLM

    torch.manual_seed(seed)
    model = Qwen3_5ForCausalLM(qwen_text_config(tok))
    model.save_pretrained(folder)
    save_tokenizer(tok, folder, "qwen3_5")
    _generation_config(folder, _ids(tok, "<|im_end|>", "<|endoftext|>"), model.config.pad_token_id)
    return folder


def build_qwen_vision(folder: Path, tok, *, seed: int = 0) -> Path:
    import torch
    from transformers import Qwen3_5Config, Qwen3_5ForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    torch.manual_seed(seed)
    text = qwen_text_config(tok)
    config = Qwen3_5Config(
        text_config=text.to_dict(),
        vision_config={"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                       "patch_size": 16, "temporal_patch_size": 2, "spatial_merge_size": 2,
                       "out_hidden_size": 64, "num_position_embeddings": 64},
        image_token_id=_ids(tok, "<|image_pad|>")[0],
        video_token_id=_ids(tok, "<|video_pad|>")[0],
        vision_start_token_id=_ids(tok, "<|vision_start|>")[0],
        vision_end_token_id=_ids(tok, "<|vision_end|>")[0],
        tie_word_embeddings=False,
    )
    model = Qwen3_5ForConditionalGeneration(config)
    model.save_pretrained(folder)
    save_tokenizer(tok, folder, "qwen3_5")
    processor = Qwen2VLImageProcessorPil(
        patch_size=16, temporal_patch_size=2, merge_size=2,
        min_pixels=32 * 32, max_pixels=64 * 64,
    )
    processor.save_pretrained(folder)
    _generation_config(folder, _ids(tok, "<|im_end|>", "<|endoftext|>"), text.pad_token_id)
    return folder


FP8_BLOCK = 32


def build_qwen_fp8(folder: Path, tok, *, seed: int = 0) -> Path:
    """Qwen3.5 text in the native block-wise FP8 layout: attention and MLP projections as
    ``float8_e4m3fn`` weights with a ``weight_scale_inv`` per 32x32 block."""
    import torch
    from safetensors.torch import load_file, save_file

    build_qwen_text(folder, tok, seed=seed)
    weights = load_file(folder / "model.safetensors")
    quantised = {}
    for name, w in weights.items():
        if name.endswith(".weight") and (".self_attn." in name or ".mlp." in name) and w.ndim == 2:
            rows, cols = w.shape
            blocks = w.float().reshape(rows // FP8_BLOCK, FP8_BLOCK, cols // FP8_BLOCK, FP8_BLOCK)
            amax = blocks.abs().amax(dim=(1, 3)).clamp(min=1e-12)
            scale = amax / torch.finfo(torch.float8_e4m3fn).max
            q = (blocks / scale[:, None, :, None]).reshape(rows, cols)
            quantised[name] = q.to(torch.float8_e4m3fn)
            quantised[name[: -len("weight")] + "weight_scale_inv"] = scale.float()
        else:
            quantised[name] = w
    save_file(quantised, folder / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "fp8", "activation_scheme": "dynamic",
        "weight_block_size": [FP8_BLOCK, FP8_BLOCK],
        "modules_to_not_convert": ["lm_head", "linear_attn", "embed_tokens"],
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


# --------------------------------------------------------------------------- gpt_oss


def build_gpt_oss(folder: Path, tok, *, seed: int = 0, mxfp4: bool = False) -> Path:
    import torch
    from transformers import GptOssConfig, GptOssForCausalLM

    torch.manual_seed(seed)
    ends = _ids(tok, "<|return|>", "<|call|>")
    config = GptOssConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_local_experts=4,
        num_experts_per_tok=2, sliding_window=128, layer_types=["sliding_attention", "full_attention"],
        eos_token_id=ends, pad_token_id=_ids(tok, "<|endoftext|>")[0],
    )
    model = GptOssForCausalLM(config)
    model.save_pretrained(folder)
    save_tokenizer(tok, folder, "gpt_oss")
    _generation_config(folder, ends, config.pad_token_id)
    if mxfp4:
        _to_mxfp4(folder)
    return folder


def _to_mxfp4(folder: Path) -> None:
    """Rewrite the experts in the MXFP4 layout of openai/gpt-oss: ``*_blocks`` uint8
    (E, rows, cols/32, 16) holding two FP4 values a byte, ``*_scales`` uint8 exponents
    (E, rows, cols/32), biases unchanged."""
    import torch
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    out = {}
    gen = torch.Generator().manual_seed(0)
    for name, w in weights.items():
        if name.endswith(("mlp.experts.gate_up_proj", "mlp.experts.down_proj")):
            experts, cols, rows = w.shape  # transformers keeps (E, in, out)
            out[name + "_blocks"] = torch.randint(
                0, 256, (experts, rows, cols // 32, 16), dtype=torch.uint8, generator=gen
            )
            out[name + "_scales"] = torch.randint(
                118, 124, (experts, rows, cols // 32), dtype=torch.uint8, generator=gen
            )
        else:
            out[name] = w
    save_file(out, folder / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "mxfp4",
        "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                   "model.embed_tokens", "lm_head"],
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
