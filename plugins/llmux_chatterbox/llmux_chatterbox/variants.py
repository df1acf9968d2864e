"""The three Chatterbox variants: the files each ``from_local`` reads, languages, knobs.

Language codes are the runtime kit's (:mod:`llmux.kit.languages`)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmux.errors import InvalidRequest
from llmux.kit import choose_language, primary_subtag

# ChatterboxMultilingualTTS's SUPPORTED_LANGUAGES (chatterbox-tts 0.1.7), kept here so that
# validating a request never imports torch.
MULTILINGUAL_LANGUAGES = (
    "ar", "da", "de", "el", "en", "es", "fi", "fr", "he", "hi", "it", "ja", "ko", "ms", "nl",
    "no", "pl", "pt", "ru", "sv", "sw", "tr", "zh",
)
GIB = 1024**3


@dataclass(frozen=True)
class Variant:
    name: str
    module: str  # chatterbox module and class whose from_local(dir, device) loads it
    cls: str
    weights: tuple[str, ...]  # files from_local needs
    optional: tuple[str, ...]  # files it reads when present
    languages: tuple[str, ...]
    knobs: tuple[str, ...]  # generate() keyword arguments the variant takes
    t3_file: str  # T3's weights, one of ``weights``: the part cast to half precision
    min_clip_seconds: float = 0.0  # prepare_conditionals asserts a longer reference clip

    def missing_files(self, directory: Path) -> list[str]:
        return [f for f in self.weights if not (directory / f).is_file()]

    def weight_bytes(self, directory: Path, t3_scale: float = 1.0) -> float:
        """The sizes of the files ``from_local`` reads, T3's times ``t3_scale`` (0.5 when
        the float32 T3 is cast to half precision, see :mod:`.precision`)."""
        return sum((directory / f).stat().st_size * (t3_scale if f == self.t3_file else 1)
                   for f in self.weights + self.optional if (directory / f).is_file())

    def check_language(self, language: str | None, allowed: list[str] | None) -> str | None:
        """The language code to pass to ``generate`` (None for English-only variants)."""
        code = primary_subtag(language)
        if self.name != "multilingual":
            if code not in (None, "en"):
                raise InvalidRequest(
                    f"Chatterbox {self.name} speaks English only, not {language!r}; use a "
                    "Chatterbox Multilingual model for other languages",
                    param="language",
                )
            return None
        return choose_language(language, self.supported_languages(allowed),
                               "this Chatterbox Multilingual model")

    def supported_languages(self, allowed: list[str] | None) -> list[str]:
        """The languages it speaks, restricted to ``allowed`` (``options.languages``)."""
        return [c for c in (allowed or self.languages) if c in self.languages]

    def load(self, directory: Path, device: str) -> Any:
        from . import fixes, t3size

        fixes.apply()
        cls = getattr(importlib.import_module(self.module), self.cls)
        with t3size.t3_size(directory):
            tts = fixes.local_files_only(directory, lambda: cls.from_local(directory, device))
        if self.name == "turbo":
            fixes.float32_loudness(tts)
        return tts


VARIANTS = {
    "english": Variant(
        "english", "chatterbox.tts", "ChatterboxTTS",
        weights=("ve.safetensors", "t3_cfg.safetensors", "s3gen.safetensors", "tokenizer.json"),
        optional=("conds.pt",),
        languages=("en",),
        knobs=("exaggeration", "cfg_weight", "temperature"),
        t3_file="t3_cfg.safetensors",
    ),
    "turbo": Variant(
        "turbo", "chatterbox.tts_turbo", "ChatterboxTurboTTS",
        weights=("ve.safetensors", "t3_turbo_v1.safetensors", "s3gen_meanflow.safetensors"),
        optional=("conds.pt",),
        languages=("en",),
        # Turbo ignores (and warns about) exaggeration and cfg_weight.
        knobs=("temperature",),
        t3_file="t3_turbo_v1.safetensors",
        min_clip_seconds=5.0,
    ),
    "multilingual": Variant(
        "multilingual", "chatterbox.mtl_tts", "ChatterboxMultilingualTTS",
        weights=("ve.pt", "t3_mtl23ls_v2.safetensors", "s3gen.pt",
                 "grapheme_mtl_merged_expanded_v1.json"),
        optional=("conds.pt", "Cangjie5_TC.json"),
        languages=MULTILINGUAL_LANGUAGES,
        knobs=("exaggeration", "cfg_weight", "temperature"),
        t3_file="t3_mtl23ls_v2.safetensors",
    ),
}

