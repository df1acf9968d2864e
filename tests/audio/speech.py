"""Speech-like audio for the audio tests, made on the spot in Python: a formant synthesiser
(numpy) turns each sentence into syllables (a noise burst for the consonants, then a voiced
vowel on a falling pitch, with pauses between words and after punctuation), and PyAV encodes
it in all nine of OpenAI's upload formats. Every file comes with the exact duration of the
audio in it, read back from the WAV that was encoded.

No test needs intelligible speech (the ASR tests run a random-weight model whose words are
forced), only audio that decodes, has speech's level and pauses, and lasts a known time; so
the suite needs no system tool and no audio test can skip for want of one.

Also imported by ``plugins/llmux_transformers/tests`` (by path), so it depends on nothing but
the standard library, numpy and PyAV.
"""

from __future__ import annotations

import io
import re
import shutil
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

#: OpenAI's upload formats -> (PyAV container, codec), or "wav" for the synthesiser's own file.
FORMATS: dict[str, tuple[str, str] | str] = {
    "flac": ("flac", "flac"),
    "mp3": ("mp3", "libmp3lame"),
    "mp4": ("mp4", "aac"),
    "mpeg": ("mp3", "libmp3lame"),  # mp3 data under another name, as browsers label it
    "mpga": ("mp3", "libmp3lame"),
    "m4a": ("ipod", "aac"),  # FFmpeg's muxer for .m4a: AAC in MP4 with the M4A brand
    "ogg": ("ogg", "vorbis"),  # Ogg Vorbis (FFmpeg's own encoder: stereo, 64-sample frames)
    "wav": "wav",
    "webm": ("webm", "libopus"),
}
TEXT = {
    "en": "Hello, this is a test of the speech recognition model. "
          "The quick brown fox jumps over the lazy dog.",
    "de": "Guten Tag, das ist ein Test der Spracherkennung. "
          "Der schnelle braune Fuchs springt über den faulen Hund.",
}
RATE = 22050  # espeak-ng's rate, so the decoder resamples as it does for real uploads
PITCH = {"en": 120.0, "de": 110.0}  # Hz at the start of the sentence; it falls by a fifth
VOWELS = "aeiouyäöü"
#: The first three formants (Hz) of each vowel letter.
FORMANTS = {"a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (390, 1990, 2550),
            "o": (570, 840, 2410), "u": (440, 1020, 2240), "y": (390, 1990, 2550),
            "ä": (660, 1700, 2400), "ö": (470, 1500, 2300), "ü": (300, 1600, 2200)}


@dataclass(frozen=True)
class Clip:
    path: Path
    format: str
    duration: float  # seconds of audio in the file, from the PCM that was encoded


def speak(text: str, language: str, out: Path) -> Path:
    """``text`` as a 22.05 kHz mono 16-bit WAV of speech-like sound (6-7 s for ``TEXT``)."""
    rng = np.random.default_rng(7)
    words = re.findall(rf"[a-zß{VOWELS}]+|[,.]", text.lower())
    syllables = [re.findall(rf"([^{VOWELS}]*)([{VOWELS}]+)", word) for word in words]
    count, done, parts = sum(map(len, syllables)), 0, []
    for word, its_syllables in zip(words, syllables):
        if word in ",.":
            parts.append(np.zeros(int(0.3 * RATE)))
            continue
        for onset, vowel in its_syllables:
            if onset:
                parts.append(_consonant(rng, 0.05))
            parts.append(_vowel(vowel[0], PITCH[language] * (1.1 - 0.2 * done / count), 0.125))
            done += 1
        parts.append(np.zeros(int(0.07 * RATE)))
    samples = np.concatenate(parts)
    # whole 64-sample frames: FFmpeg's Vorbis encoder pads its last one with silence
    samples = np.pad(samples, (0, -len(samples) % 64))
    return write_wav(0.5 * samples / np.abs(samples).max(), RATE, out)


def _vowel(vowel: str, pitch: float, seconds: float) -> np.ndarray:
    """A voiced vowel: the harmonics of a slightly falling pitch, weighted by its formants."""
    n = int(seconds * RATE)
    phase = 2 * np.pi * np.cumsum(np.linspace(pitch * 1.05, pitch * 0.95, n)) / RATE
    out = np.zeros(n)
    for k in range(1, int(4000 / pitch) + 1):
        gain = sum(1 / (1 + ((k * pitch - f) / (60 + 0.05 * f)) ** 2) for f in FORMANTS[vowel])
        out += gain / k**0.5 * np.sin(k * phase)
    return out * _fade(n, 0.015)


def _consonant(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A consonant: white noise band-passed to 1.5-6 kHz."""
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[(freqs < 1500) | (freqs > 6000)] = 0
    return 0.3 * np.fft.irfft(spectrum, n) * _fade(n, 0.005)


def _fade(n: int, seconds: float) -> np.ndarray:
    """Raised-cosine fade-in and fade-out of ``seconds`` each (no clicks)."""
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, min(int(seconds * RATE), n // 2)))
    env = np.ones(n)
    env[:len(ramp)], env[n - len(ramp):] = ramp, ramp[::-1]
    return env


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
        # FFmpeg's Vorbis encoder is "experimental" and takes only stereo: the same speech in
        # both channels, which the decoder mixes back to the same mono
        layout = "stereo" if codec == "vorbis" else "mono"
        options = {"strict": "experimental"} if codec == "vorbis" else {}
        stream = c.add_stream(codec, rate=out_rate, layout=layout, options=options)
        fmt = stream.codec_context.codec.audio_formats[0].name
        resampler = av.AudioResampler(format=fmt, layout=layout, rate=out_rate)
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
