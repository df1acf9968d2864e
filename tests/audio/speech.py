"""Real speech for the audio tests, made on the spot: Debian's ``espeak-ng`` speaks (English
``-v en-us``, German ``-v de``), ``sox`` converts to FLAC and Ogg Vorbis, PyAV encodes the
rest. Every file of OpenAI's nine upload formats comes with the exact duration of the audio
in it, read back from the WAV that was encoded.

Also imported by ``plugins/llmux_transformers/tests`` (by path), so it depends on nothing but
the standard library, numpy and PyAV.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

#: OpenAI's upload formats -> (PyAV container, codec) or "sox" for sox's own encoders.
FORMATS: dict[str, tuple[str, str] | str] = {
    "flac": "sox",
    "mp3": ("mp3", "libmp3lame"),
    "mp4": ("mp4", "aac"),
    "mpeg": ("mp3", "libmp3lame"),  # mp3 data under another name, as browsers label it
    "mpga": ("mp3", "libmp3lame"),
    "m4a": ("ipod", "aac"),  # FFmpeg's muxer for .m4a: AAC in MP4 with the M4A brand
    "ogg": "sox",  # Ogg Vorbis
    "wav": "wav",
    "webm": ("webm", "libopus"),
}
TEXT = {
    "en": "Hello, this is a test of the speech recognition model. "
          "The quick brown fox jumps over the lazy dog.",
    "de": "Guten Tag, das ist ein Test der Spracherkennung. "
          "Der schnelle braune Fuchs springt über den faulen Hund.",
}


@dataclass(frozen=True)
class Clip:
    path: Path
    format: str
    duration: float  # seconds of audio in the file, from the PCM that was encoded


def tools_missing() -> list[str]:
    return [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]


def speak(text: str, language: str, out: Path) -> Path:
    """espeak-ng -> a 22.05 kHz mono 16-bit WAV."""
    voice = {"en": "en-us", "de": "de"}[language]
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(out), text], check=True,
                   capture_output=True)
    return out


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.reshape(-1, channels).mean(axis=1).astype(np.float32) / 32768.0, rate


def write_wav(samples: np.ndarray, rate: int, path: Path) -> Path:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def concatenate(wavs: list[Path], out: Path, *, repeat: int = 1, gap: float = 0.4) -> Path:
    """One long WAV: the clips ``repeat`` times over, with ``gap`` seconds of silence between."""
    parts, rate = [], None
    for _ in range(repeat):
        for wav in wavs:
            samples, rate = read_wav(wav)
            parts += [samples, np.zeros(int(gap * rate), np.float32)]
    return write_wav(np.concatenate(parts), rate, out)


def encode(wav: Path, fmt: str, out: Path) -> Path:
    """The WAV as an upload of OpenAI format ``fmt`` (the file name carries no meaning)."""
    how = FORMATS[fmt]
    if how == "wav":
        shutil.copyfile(wav, out)
    elif how == "sox":
        kind = {"flac": "flac", "ogg": "vorbis"}[fmt]
        subprocess.run(["sox", str(wav), "-t", kind, str(out)], check=True, capture_output=True)
    else:
        container, codec = how
        out.write_bytes(pyav_encode(wav, container, codec))
    return out


def pyav_encode(wav: Path, container: str, codec: str) -> bytes:
    import av

    samples, rate = read_wav(wav)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as c:
        out_rate = 48000 if codec == "libopus" else rate
        stream = c.add_stream(codec, rate=out_rate, layout="mono")
        fmt = stream.codec_context.codec.audio_formats[0].name
        resampler = av.AudioResampler(format=fmt, layout="mono", rate=out_rate)
        stream.time_base = Fraction(1, out_rate)
        for start in range(0, len(samples), 4096):
            frame = av.AudioFrame.from_ndarray(
                samples[start:start + 4096].reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = rate
            # timestamps from 0, as FFmpeg's CLI sets them: the MP4 muxer then writes the
            # edit list that tells decoders to drop AAC's priming samples
            frame.pts, frame.time_base = start, Fraction(1, rate)
            for piece in resampler.resample(frame):
                c.mux(stream.encode(piece))
        for piece in resampler.resample(None):
            c.mux(stream.encode(piece))
        c.mux(stream.encode(None))
    return buffer.getvalue()


def make_clips(folder: Path, wav: Path, name: str) -> dict[str, Clip]:
    """``wav`` in all nine formats, as ``folder/<name>-<format>.bin`` (no telling suffix)."""
    samples, rate = read_wav(wav)
    duration = len(samples) / rate
    return {
        fmt: Clip(encode(wav, fmt, folder / f"{name}-{fmt}.bin"), fmt, duration)
        for fmt in FORMATS
    }
