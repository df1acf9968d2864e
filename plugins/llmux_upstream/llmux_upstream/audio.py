"""Transcription and speech through an upstream's ``/audio/transcriptions`` and
``/audio/speech``.

The core hands the plugin decoded samples and takes samples back, so the audio travels as
WAV both ways (16-bit PCM: what every OpenAI-compatible server reads and writes), encoded and
decoded with the core's own FFmpeg (PyAV) helpers in :mod:`llmux.audio`. The client's
``response_format`` and ``speed`` are applied by llmux, after: the upstream always gets
speed 1 and is asked for WAV.
"""

from __future__ import annotations

import io
from typing import Any

from llmux import (
    Cancellation,
    InvalidRequest,
    Segment,
    Speech,
    SpeechRequest,
    Transcription,
    TranscriptionRequest,
)

from .client import Upstream
from .errors import broken


def transcribe(up: Upstream, request: TranscriptionRequest,
               cancel: Cancellation) -> Transcription:
    from llmux.audio.encode import encode_audio

    s = up.settings
    wav = encode_audio(request.samples, request.sample_rate, "wav")
    form = {"model": s.model, "response_format": s.transcription_format}
    if request.language:
        form["language"] = request.language
    if request.prompt:
        form["prompt"] = request.prompt
    if request.temperature is not None:
        form["temperature"] = str(request.temperature)
    files = {"file": ("audio.wav", wav, "audio/wav")}
    with up.exchange(cancel, "POST", "/audio/transcriptions", data=form,
                     files=files) as response:
        response.read()
    try:
        body = response.json()
        return transcription(body)
    except (ValueError, TypeError, KeyError, AttributeError):
        raise broken(s.shown_url, detail="its transcription is not OpenAI's JSON") from None


def transcription(body: Any) -> Transcription:
    """OpenAI's ``json`` / ``verbose_json`` transcription as llmux's."""
    text = body["text"]
    if not isinstance(text, str):
        raise TypeError("text")
    segments = tuple(Segment(float(x["start"]), float(x["end"]), str(x.get("text") or ""))
                     for x in body.get("segments") or ())
    language = body.get("language")
    return Transcription(text=text, language=language if isinstance(language, str) else None,
                         segments=segments)


def speak(up: Upstream, request: SpeechRequest, cancel: Cancellation) -> Speech:
    s = up.settings
    body: dict[str, Any] = {"model": s.model, "input": request.text, "response_format": "wav"}
    voice = request.voice or request.behaviour.voice
    if voice:
        body["voice"] = voice
    language = request.language or request.behaviour.language
    if language:
        body["language"] = language  # an extension llmux (and some TTS servers) read
    with up.exchange(cancel, "POST", "/audio/speech", json=body) as response:
        data = response.read()
    try:
        samples, rate = decode_wav(data)
    except InvalidRequest as exc:
        raise broken(s.shown_url, detail=f"its speech is not audio: {exc.message}") from None
    return Speech(samples=samples, sample_rate=rate)


def decode_wav(data: bytes):
    """Audio bytes (WAV, or any format FFmpeg reads) -> (float32 mono samples, their rate),
    at the rate the file has."""
    import av

    from llmux.audio.decode import decode_audio

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            streams = container.streams.audio
            rate = streams[0].codec_context.sample_rate if streams else 0
    except (av.FFmpegError, ValueError, EOFError) as exc:
        raise InvalidRequest(f"{getattr(exc, 'strerror', None) or exc}") from None
    if not rate:
        raise InvalidRequest("no audio stream with a sample rate")
    return decode_audio(data, rate), rate
