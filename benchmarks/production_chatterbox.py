"""The three Chatterbox layouts at their published shapes, for
:mod:`benchmarks.production_shapes`: chatterbox's own ``T3`` / ``S3Gen`` / ``VoiceEncoder``
on the meta device, written under the file names each variant's ``from_local`` reads
(``llmux_chatterbox.variants``), data as sparse holes."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Callable

from llmux_transformers.checkpoint import Tensor

from .production_shapes import (
    TORCH_TO_ST,
    _plugin_tests,
    _sparse,
    _write_json,
    write_safetensors,
)

# conds.pt (the built-in voice): a pickled Conditionals with a 10 s prompt, ~0.17 MB. An
# estimate; the estimator adds it to the weights, where it is lost in the rounding.
CONDS_BYTES = 170_000


@cache
def _chatterbox_modules() -> dict[str, list[Tensor]]:
    """The state dicts chatterbox-tts builds, by part, as float32 tensors on the meta device."""
    import torch
    from llmux_chatterbox import fixes

    fixes.apply()
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.models.t3.modules.t3_config import T3Config
    from chatterbox.models.voice_encoder import VoiceEncoder

    turbo = _plugin_tests("llmux_chatterbox", "chatterbox_checkpoints").turbo_config
    builders: dict[str, Callable[[], Any]] = {
        "ve": VoiceEncoder, "t3": T3, "t3_mtl": lambda: T3(T3Config.multilingual()),
        "t3_turbo": lambda: T3(turbo()), "s3gen": S3Gen,
        "s3gen_meanflow": lambda: S3Gen(meanflow=True),
    }
    out = {}
    for part, build in builders.items():
        with torch.device("meta"):
            module = build()
        out[part] = [Tensor(k, TORCH_TO_ST[str(v.dtype)], tuple(v.shape))
                     for k, v in module.state_dict().items()]
    return out


def _torch_save_size(tensors: list[Tensor]) -> int:
    """About what ``torch.save(state_dict)`` writes: each storage 64-byte aligned in the zip,
    ~300 bytes of zip entry and pickle per tensor, plus the archive's own records."""
    return sum(-(-int(t.nbytes) // 64) * 64 + 300 for t in tensors) + 1024


def chatterbox(folder: Path, variant_name: str) -> list[Tensor]:
    """The files ``from_local`` of the variant reads (``llmux_chatterbox.variants``)."""
    from llmux_chatterbox.variants import VARIANTS

    cb = _plugin_tests("llmux_chatterbox", "chatterbox_checkpoints")
    parts = _chatterbox_modules()
    safetensors = {"ve.safetensors": "ve", "t3_cfg.safetensors": "t3",
                   "s3gen.safetensors": "s3gen", "t3_turbo_v1.safetensors": "t3_turbo",
                   "s3gen_meanflow.safetensors": "s3gen_meanflow",
                   "t3_mtl23ls_v2.safetensors": "t3_mtl"}
    pickles = {"ve.pt": "ve", "s3gen.pt": "s3gen"}
    languages = [f"[{code}]" for code in cb.LANGUAGES]
    folder.mkdir(parents=True, exist_ok=True)
    variant = VARIANTS[variant_name]
    written: list[Tensor] = []
    for name in variant.weights + variant.optional:
        path = folder / name
        if name in safetensors:
            write_safetensors(path, parts[safetensors[name]])
            written += parts[safetensors[name]]
        elif name in pickles:
            _sparse(path, b"PK\x03\x04", _torch_save_size(parts[pickles[name]]) - 4)
            written += parts[pickles[name]]
        elif name == "conds.pt":
            _sparse(path, b"PK\x03\x04", CONDS_BYTES - 4)
        elif name == "tokenizer.json":
            cb._char_tokenizer(path, [], 704)
        elif name == "grapheme_mtl_merged_expanded_v1.json":
            cb._char_tokenizer(path, languages, 2454)
        elif name == "Cangjie5_TC.json":
            _write_json(path, ["日\ta", "月\tb", "金\tc", "木\td", "水\te", "火\tf", "土\tg"])
        else:
            raise ValueError(f"no builder for Chatterbox {variant_name} file {name!r}: add one")
    if variant_name == "turbo":  # ChatterboxTurboTTS reads a GPT-2 tokenizer from the folder
        cb._gpt2_tokenizer(folder)
    return written
