#!/usr/bin/env python3
"""Build tiny random-weight models of every production physical model, for the opt-in demo
(``scripts/demo.sh --tiny``, ``config/demo-tiny``) and ``tests/test_demo_tiny.py``.

    python scripts/make_tiny_models.py DIR [--skip-tts]

Each model gets the folder its production ``path`` names under ``models_dir`` and the real
architecture and file layout, with random weights and a few layers, built by the same
builders the runtime plugins' own tests use (each plugin's ``tiny`` module:
``llmux_transformers.tiny``, ``llmux_llamacpp.tiny``, ``llmux_chatterbox.tiny``):

- ``qwen3.5-9b-fp8``: Qwen3.5 text in the block-wise FP8 layout (transformers);
- ``qwen3.5-4b``: Qwen3.5 with its vision tower (transformers);
- ``gpt-oss-20b``: gpt-oss with MXFP4 experts (transformers); ``gpt-oss-20b-uncensored`` is
  the same build, hard-linked;
- ``qwen3.5-9b-uncensored``: a qwen35 GGUF and its mmproj (llama.cpp);
- ``cohere-transcribe``: ``cohere_asr`` (transformers);
- ``chatterbox``, ``chatterbox-turbo``, ``chatterbox-multilingual``: the three Chatterbox
  variants (skipped by ``--skip-tts``), with identical files hard-linked across them.

Idempotent: a finished model folder holds ``.llmux-tiny.json`` and is skipped next time.

The Chatterbox checkpoints have a shrunk T3 transformer (as in the plugin's tests); each
carries ``t3_config.json`` with that size, which the plugin applies when it loads them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The Qwen3.5 chat template the plugins' tests embed (the chat-format suite's stand-in).
QWEN_TEMPLATE = REPO / "tests" / "chatformats" / "templates" / "qwen3_5.jinja"
MARKER = ".llmux-tiny.json"
GGUF_FILE = "tiny-qwen35.gguf"  # the names config/demo-tiny/models.yaml gives llamacpp
MMPROJ_FILE = "mmproj-tiny-qwen35.gguf"
CHATTERBOX = {"chatterbox": "english", "chatterbox-turbo": "turbo",
              "chatterbox-multilingual": "multilingual"}  # folder -> build_all's name

def log(message: str) -> None:
    print(message, flush=True)


def done(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def mark(folder: Path, what: str, seconds: float) -> None:
    (folder / MARKER).write_text(json.dumps(
        {"what": what, "build_seconds": round(seconds, 2), "built": time.strftime("%F %T")}
    ) + "\n")


def fresh(folder: Path) -> Path:
    """An empty ``folder`` (a half-built one from an interrupted run is removed)."""
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def size(folder: Path) -> int:
    """Bytes of the files under ``folder``, each hard-linked file counted once."""
    seen, total = set(), 0
    for p in folder.rglob("*"):
        st = p.lstat()
        if p.is_file() and not p.is_symlink() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def human(n: float) -> str:
    """Decimal units: 4.2 GB is 4.2e9 bytes."""
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


# --------------------------------------------------------------------------- builders


def build_transformers(root: Path, built: list) -> None:
    names = ("qwen3.5-9b-fp8", "qwen3.5-4b", "gpt-oss-20b", "gpt-oss-20b-uncensored",
             "cohere-transcribe")
    if all(done(root / name) for name in names):
        return  # without importing torch and transformers
    from llmux_transformers import tiny as transformers_tiny
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    chat = {
        "qwen3.5-9b-fp8": ("Qwen3.5 text, block-wise FP8", transformers_tiny.build_qwen_fp8),
        "qwen3.5-4b": ("Qwen3.5 with vision", transformers_tiny.build_qwen_vision),
        "gpt-oss-20b": ("gpt-oss, MXFP4 experts",
                        lambda f, t: transformers_tiny.build_gpt_oss(f, t, mxfp4=True)),
    }
    tokenizer = None
    for name, (what, builder) in chat.items():
        folder = root / name
        if done(folder):
            continue
        start = time.monotonic()
        tokenizer = tokenizer or transformers_tiny.train_tokenizer()
        builder(fresh(folder), tokenizer)
        built.append((name, what, time.monotonic() - start))
        mark(folder, what, built[-1][2])

    # The uncensored fine-tune: the same tiny build (hard links; a symlink would make two
    # physical models resolve to one location).
    source, folder = root / "gpt-oss-20b", root / "gpt-oss-20b-uncensored"
    if not done(folder):
        start = time.monotonic()
        fresh(folder)
        for f in source.iterdir():
            if f.name != MARKER:
                os.link(f, folder / f.name)
        built.append((folder.name, "gpt-oss, MXFP4 experts (hard links to gpt-oss-20b)",
                      time.monotonic() - start))
        mark(folder, built[-1][1], built[-1][2])

    folder = root / "cohere-transcribe"
    if not done(folder):
        start = time.monotonic()
        transformers_tiny.build_cohere_asr(fresh(folder))
        built.append((folder.name, "cohere_asr speech-to-text", time.monotonic() - start))
        mark(folder, built[-1][1], built[-1][2])


def build_llamacpp(root: Path, built: list) -> None:
    folder = root / "qwen3.5-9b-uncensored"
    if done(folder):
        return
    from llmux_llamacpp import tiny as llamacpp_tiny

    start = time.monotonic()
    fresh(folder)
    llamacpp_tiny.write_text_model(folder / GGUF_FILE, QWEN_TEMPLATE.read_text())
    llamacpp_tiny.write_mmproj(folder / MMPROJ_FILE)
    built.append((folder.name, "qwen35 GGUF + qwen3vl mmproj", time.monotonic() - start))
    mark(folder, built[-1][1], built[-1][2])


def build_chatterbox(root: Path, built: list) -> None:
    if all(done(root / name) for name in CHATTERBOX):
        return
    from llmux_chatterbox import tiny as cc

    start = time.monotonic()
    staging = fresh(root / ".chatterbox-build")
    clips = root / "chatterbox-clips"  # the reference clips the built-in voices came from
    clips.mkdir(exist_ok=True)
    builtin = cc.write_clip(clips / "builtin.wav", 2.0, 140.0, seed=1)
    turbo = cc.write_clip(clips / "turbo.wav", 5.5, 140.0, seed=1)
    with cc.shrink_t3():
        dirs = cc.build_all(staging, builtin, turbo)
    for name, variant in CHATTERBOX.items():
        if (root / name).exists():
            shutil.rmtree(root / name)
        dirs[variant].rename(root / name)
    shutil.rmtree(staging)
    linked = link_duplicates([root / name for name in CHATTERBOX])
    seconds = time.monotonic() - start
    for name, variant in CHATTERBOX.items():
        what = f"Chatterbox {variant}, shrunk T3 (the three together)"
        built.append((name, what, seconds))
        mark(root / name, what, seconds)
    for dup, original, n in linked:
        log(f"  hard link: {dup.relative_to(root)} = {original.relative_to(root)} ({human(n)})")


def link_duplicates(folders: list[Path]) -> list[tuple[Path, Path, int]]:
    """Replace every file whose bytes equal an earlier one's by a hard link to it (the names
    stay those the library reads: only the content is shared)."""
    first: dict[tuple[int, str], Path] = {}
    linked = []
    for folder in folders:
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest = hashlib.sha256()
            with f.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    digest.update(block)
            key = (f.stat().st_size, digest.hexdigest())
            if key in first:
                f.unlink()
                os.link(first[key], f)
                linked.append((f, first[key], key[0]))
            else:
                first[key] = f
    return linked


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="the models directory to build into")
    parser.add_argument("--skip-tts", action="store_true",
                        help="skip the three Chatterbox models (4.2 GB, ~25 s)")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    root = args.dir.resolve()
    root.mkdir(parents=True, exist_ok=True)

    start = time.monotonic()
    built: list[tuple[str, str, float]] = []
    build_transformers(root, built)
    build_llamacpp(root, built)
    if not args.skip_tts:
        build_chatterbox(root, built)

    for name, what, seconds in built:
        log(f"built {name:26} {what:55} {seconds:5.1f} s")
    skipped = " (Chatterbox skipped: --skip-tts)" if args.skip_tts else ""
    log(f"{len(built)} model(s) built in {time.monotonic() - start:.1f} s{skipped}; "
        f"{root}: {human(size(root))} on disk")
    return 0


if __name__ == "__main__":
    sys.exit(main())
