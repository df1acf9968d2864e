"""Tiny random-weight checkpoints of what this plugin serves, for tests, the tiny demo
(``scripts/make_tiny_models.py``) and the benchmarks: :mod:`.checkpoints` (Qwen3.5 text,
vision and FP8; gpt-oss, MXFP4 too) and :mod:`.asr` (``cohere_asr``). Importing them is
cheap; torch and transformers load when a checkpoint is built.
"""

from .asr import build_cohere_asr
from .checkpoints import (
    build_gpt_oss,
    build_qwen_fp8,
    build_qwen_text,
    build_qwen_vision,
    save_tokenizer,
    template,
    train_tokenizer,
)

__all__ = ["build_cohere_asr", "build_gpt_oss", "build_qwen_fp8", "build_qwen_text",
           "build_qwen_vision", "save_tokenizer", "template", "train_tokenizer"]
