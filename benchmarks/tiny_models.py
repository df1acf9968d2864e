"""The tiny random-weight Qwen3.5 (hybrid) of each runtime, built once per benchmark run
under ``work`` and shared by the sections that drive them (structured, prefix)."""

from __future__ import annotations

from pathlib import Path

from .harness import REPO


def qwen_checkpoint(work: Path) -> Path:
    """The transformers checkpoint folder (``llmux_transformers.tiny``)."""
    from llmux_transformers.tiny import checkpoints

    folder = work / "tiny-qwen"
    if not folder.exists():
        folder.mkdir(parents=True)
        checkpoints.build_qwen_text(folder, checkpoints.train_tokenizer())
    return folder


def qwen_gguf(work: Path) -> Path:
    """The GGUF file (``llmux_llamacpp.tiny``) with the real Qwen3.5 chat template."""
    from llmux_llamacpp.tiny import write_text_model

    path = work / "tiny-qwen-gguf" / "tiny.gguf"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        template = REPO / "tests" / "chatformats" / "templates" / "qwen3_5.jinja"
        write_text_model(path, template.read_text())
    return path
