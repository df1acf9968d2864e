"""The core's decoder: every OpenAI upload format, by content, to exact-length mono PCM."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest

from llmux.audio.decode import UPLOAD_FORMATS, decode_audio
from llmux.errors import InvalidRequest

from . import speech


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" + b"\xff\x00\x00" * 2)) + chunk(b"IEND", b""))


def test_the_nine_formats_are_openais():
    assert set(UPLOAD_FORMATS) == set(speech.FORMATS)


@pytest.mark.parametrize("fmt", speech.FORMATS)
@pytest.mark.parametrize("lang", ["en", "de"])
def test_every_format_decodes_to_mono_16k_of_the_source_duration(clips, lang, fmt):
    clip = clips[lang, fmt]
    samples = decode_audio(clip.path.read_bytes(), 16000)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) / 16000 - clip.duration) < 0.005  # FFmpeg's gapless info + MP4 trim
    assert 0.01 < float(np.sqrt(np.mean(samples**2))) < 1.0  # speech, not silence or noise


def test_other_rates_for_other_runtimes(clips):
    clip = clips["en", "ogg"]
    samples = decode_audio(clip.path.read_bytes(), 24000)
    assert abs(len(samples) / 24000 - clip.duration) < 0.005


def test_stereo_is_mixed_down(spoken, tmp_path):
    mono, rate = speech.read_wav(spoken["en"])
    out = io.BytesIO()
    import wave

    with wave.open(out, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        pcm = (np.stack([mono, np.zeros_like(mono)], axis=1) * 32767).astype("<i2")
        w.writeframes(pcm.tobytes())
    samples = decode_audio(out.getvalue(), 16000)
    assert samples.ndim == 1 and abs(len(samples) / 16000 - len(mono) / rate) < 0.005


@pytest.mark.parametrize("data, message", [
    (b"", "the uploaded file is empty"),
    (b"this is not audio at all", "is not audio in a supported format (flac, mp3, mp4, mpeg, "
                                  "mpga, m4a, ogg, wav, webm)"),
    (b'{"text": "json"}', "is not audio in a supported format"),
    (bytes(4096), "is not audio in a supported format"),
    (png(), "has no audio stream"),
])
def test_what_is_not_audio_is_a_400_that_says_so(data, message):
    with pytest.raises(InvalidRequest) as info:
        decode_audio(data, 16000)
    assert message in info.value.message
    assert info.value.status == 400 and info.value.param == "file"


def test_a_wav_header_without_samples(clips):
    with pytest.raises(InvalidRequest, match="contains no audio samples"):
        decode_audio(clips["en", "wav"].path.read_bytes()[:44], 16000)


def test_a_truncated_upload_keeps_what_decodes(clips):
    clip = clips["en", "mp3"]
    data = clip.path.read_bytes()
    samples = decode_audio(data[: len(data) // 2], 16000)
    assert 0.3 * clip.duration < len(samples) / 16000 < 0.7 * clip.duration


def test_too_long_audio_is_refused_while_decoding(clips):
    with pytest.raises(InvalidRequest, match="longer than the limit of 0.05 minutes"):
        decode_audio(clips["en", "flac"].path.read_bytes(), 16000, max_seconds=3)
