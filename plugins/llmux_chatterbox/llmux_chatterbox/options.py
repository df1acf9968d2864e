"""The ``options`` of a chatterbox model in models.yaml, and the knobs a request ends up with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from llmux.errors import InvalidRequest

from .precision import DEFAULT_DTYPE, DTYPES
from .tokens import DEFAULT_MAX_SPEECH_TOKENS
from .variants import MULTILINGUAL_LANGUAGES, VARIANTS

KNOB_DEFAULTS = {"exaggeration": 0.5, "cfg_weight": 0.5, "temperature": 0.8}
KNOB_RANGES = {"exaggeration": (0.0, 2.0), "cfg_weight": (0.0, 1.0), "temperature": (0.05, 5.0)}

OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["variant"],
    "properties": {
        "variant": {"enum": sorted(VARIANTS),
                    "description": "which Chatterbox model the files are"},
        "max_speech_tokens": {
            "type": "integer", "minimum": 1, "maximum": 4096,
            "default": DEFAULT_MAX_SPEECH_TOKENS,
            "description": "upper bound on the speech tokens (25 per second of audio) that one "
                           "generate() call, i.e. one chunk of sentences, may sample",
        },
        "device": {"type": "string", "pattern": "^(auto|cpu|cuda(:[0-9]+)?)$",
                   "description": "auto (default): cuda when available, else cpu"},
        "dtype": {"enum": list(DTYPES), "default": DEFAULT_DTYPE,
                  "description": "T3's dtype on CUDA (float16/bfloat16 halve its weights); "
                                 "S3Gen and the voice encoder stay float32, and on CPU all "
                                 "of it does"},
        **{
            knob: {"type": "number", "minimum": lo, "maximum": hi, "default": KNOB_DEFAULTS[knob]}
            for knob, (lo, hi) in KNOB_RANGES.items()
        },
        "voices": {
            "type": "object",
            "description": "voice name -> reference clip (wav/mp3/flac), relative to the "
                           "checkpoint directory or to models_dir",
            "additionalProperties": {"type": "string", "minLength": 1},
        },
        "languages": {
            "type": "array", "items": {"enum": list(MULTILINGUAL_LANGUAGES)}, "minItems": 1,
            "uniqueItems": True,
            "description": "multilingual only: the subset of languages to accept",
        },
    },
}


@dataclass(frozen=True)
class Knobs:
    max_speech_tokens: int
    exaggeration: float
    cfg_weight: float
    temperature: float

    @classmethod
    def merge(cls, *layers: Mapping[str, Any]) -> "Knobs":
        """Model options, then the virtual model's behaviour options, then the request's.

        A later layer overrides a knob; it can only lower ``max_speech_tokens``.
        """
        merged: dict[str, Any] = dict(KNOB_DEFAULTS)
        caps = []
        for layer in layers:
            merged.update({k: v for k, v in (layer or {}).items() if k in KNOB_DEFAULTS})
            if (layer or {}).get("max_speech_tokens") is not None:
                caps.append(layer["max_speech_tokens"])
        for knob, (lo, hi) in KNOB_RANGES.items():
            value = merged[knob]
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not lo <= value <= hi:
                raise InvalidRequest(f"{knob!r} must be a number between {lo:g} and {hi:g}",
                                     param=knob)
        for cap in caps:
            if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
                raise InvalidRequest("'max_speech_tokens' must be a positive integer",
                                     param="max_speech_tokens")
        return cls(max_speech_tokens=min(caps, default=DEFAULT_MAX_SPEECH_TOKENS), **merged)
