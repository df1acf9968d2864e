"""Transcription -> OpenAI's verbose_json, srt and vtt.

The ASR model emits no timestamps: segments are the chunks the runtime transcribed
separately (up to 35 s each for Cohere Transcribe, cut at the quietest moment near the end of
each), so their times are chunk boundaries, not sentence or word times. A runtime that
returns no segments gets one segment spanning the whole audio.
"""

from __future__ import annotations

import math

from ..types import Segment, Transcription


def _segments(result: Transcription, duration: float) -> list[Segment]:
    if result.segments:
        return list(result.segments)
    return [Segment(0.0, duration, result.text)]


def verbose_json(result: Transcription, duration: float, language: str | None) -> dict:
    """OpenAI's ``verbose_json``. The per-segment statistics Whisper reports (tokens, average
    log-probability, compression ratio, no-speech probability) do not exist for this model
    and are ``null`` / empty rather than made up."""
    return {
        "task": "transcribe",
        "language": result.language or language,
        "duration": round(duration, 3),
        "text": result.text,
        "segments": [
            {"id": i, "seek": int(round(s.start * 100)), "start": round(s.start, 3),
             "end": round(s.end, 3), "text": s.text, "tokens": [], "temperature": 0.0,
             "avg_logprob": None, "compression_ratio": None, "no_speech_prob": None}
            for i, s in enumerate(_segments(result, duration))
        ],
        "usage": {"type": "duration", "seconds": math.ceil(duration)},
    }


def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cues(result: Transcription, duration: float) -> list[Segment]:
    """Segments with text: a chunk of silence makes no subtitle."""
    return [s for s in _segments(result, duration) if s.text.strip()]


def srt(result: Transcription, duration: float) -> str:
    blocks = [
        f"{i}\n{_stamp(s.start, ',')} --> {_stamp(s.end, ',')}\n{s.text.strip()}\n"
        for i, s in enumerate(_cues(result, duration), 1)
    ]
    return "\n".join(blocks)


def vtt(result: Transcription, duration: float) -> str:
    blocks = [
        f"{_stamp(s.start, '.')} --> {_stamp(s.end, '.')}\n{s.text.strip()}\n"
        for s in _cues(result, duration)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)
