"""What scripts/acceptance.py checks with: the 16 virtual models and their groups, the
prompts and tool, and test material made on the spot (a PNG, a tone, speech clips)."""

from __future__ import annotations

import io
import math
import re
import struct
import wave
import zlib
from dataclasses import dataclass
from pathlib import Path

# The 16 virtual models (VMDL-004) and their physical models (the production mapping).
QWEN = {
    "qwen3.5-9b-fp8-thinking": "qwen3.5-9b-fp8",
    "qwen3.5-9b-fp8-instruct": "qwen3.5-9b-fp8",
    "qwen3.5-9b-fp8-uncensored-thinking": "qwen3.5-9b-fp8-uncensored",
    "qwen3.5-9b-fp8-uncensored-instruct": "qwen3.5-9b-fp8-uncensored",
    "qwen3.5-4b-thinking": "qwen3.5-4b",
    "qwen3.5-4b-instruct": "qwen3.5-4b",
}
GPT_OSS = {
    f"gpt-oss-20b{suffix}-{level}": f"gpt-oss-20b{suffix}"
    for suffix in ("", "-uncensored")
    for level in ("low", "medium", "high")
}
LLMS = {**QWEN, **GPT_OSS}
ASR = {"cohere-transcribe": "cohere-transcribe"}
TTS = {
    "Chatterbox": "chatterbox",
    "Chatterbox-Turbo": "chatterbox-turbo",
    "Chatterbox-Multilingual": "chatterbox-multilingual",
}
VIRTUAL = {**LLMS, **ASR, **TTS}
# One virtual model per physical model, for the checks that need not run every variant.
VISION_MODELS = ["qwen3.5-9b-fp8-instruct", "qwen3.5-9b-fp8-uncensored-instruct",
                 "qwen3.5-4b-instruct"]  # TST-014
NO_VISION_MODEL = "gpt-oss-20b-low"
TOOL_MODELS = ["qwen3.5-9b-fp8-instruct", "qwen3.5-9b-fp8-uncensored-instruct",
               "qwen3.5-4b-instruct", "gpt-oss-20b-low", "gpt-oss-20b-uncensored-low"]  # TST-015
STREAM_MODELS = ["qwen3.5-9b-fp8-instruct", "qwen3.5-9b-fp8-uncensored-instruct",
                 "qwen3.5-4b-instruct", "gpt-oss-20b-low", "gpt-oss-20b-uncensored-low"]
TTS_TEXT = {
    "Chatterbox": "Hello, this is a test of the speech output.",
    "Chatterbox-Turbo": "Hello, this is a quick test of the speech output.",
    "Chatterbox-Multilingual": "Hallo, dies ist ein Test der Sprachausgabe.",
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
}
GROUPS = ("auth", "models", "chat", "stream", "asr", "tts", "vision", "tools", "vram")
DEFAULT_AUDIO_DIR = Path(__file__).resolve().parent.parent / "tests" / "deploy" / "data"


# --------------------------------------------------------------------------- test material


def png_square(rgb: tuple[int, int, int] = (220, 20, 20), size: int = 64) -> bytes:
    """A solid-colour PNG, built with zlib and struct."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(row * size)) + chunk(b"IEND", b""))


def tone_wav(seconds: float = 1.5, rate: int = 16000) -> bytes:
    """A short WAV (a tone, not speech): enough for the echo runtime's ASR."""
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
        for i in range(int(seconds * rate))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


@dataclass
class Clip:
    language: str
    filename: str
    data: bytes
    expected: str | None  # what is said; None for the generated tone


def load_clips(audio_dir: Path | None) -> dict[str, Clip]:
    clips = {}
    for lang in ("en", "de"):
        found = None
        for directory in [d for d in (audio_dir, DEFAULT_AUDIO_DIR) if d is not None]:
            candidates = sorted(p for p in directory.glob(f"speech_{lang}.*") if p.suffix != ".txt")
            if candidates:
                found = candidates[0]
                break
        if found is None:
            clips[lang] = Clip(lang, f"tone_{lang}.wav", tone_wav(), None)
            continue
        text_file = found.with_suffix(".txt")
        expected = text_file.read_text(encoding="utf-8").strip() if text_file.exists() else None
        clips[lang] = Clip(lang, found.name, found.read_bytes(), expected)
    return clips


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def recall(expected: str, heard: str) -> float:
    want, got = words(expected), set(words(heard))
    return sum(w in got for w in want) / max(1, len(want))


def is_mp3(data: bytes) -> bool:
    return data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)
