"""Transcription and speech relayed to the real upstream llmux (the demo's echo ASR and TTS),
driven with the official ``openai`` client."""

from __future__ import annotations

import io

import numpy as np
import openai
import pytest
from upstream_fixtures import openai_client

from llmux.testing import sine_wav


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    import wave

    with wave.open(io.BytesIO(data)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return pcm.astype(np.float32) / 32768, w.getframerate()


async def test_a_transcription_passes_through_with_its_segments(client):
    api = openai_client(client)
    result = await api.audio.transcriptions.create(
        model="transcribe", file=("clip.wav", sine_wav(1.5)), response_format="verbose_json")
    # the upstream got exactly the 1.5 s at 16 kHz that llmux decoded, and its virtual
    # model's language (en) applied there
    assert result.text == "1.50 seconds of audio in en"
    assert result.language == "en" and result.duration == 1.5
    (segment,) = result.segments
    assert (segment.start, segment.end, segment.text) == (0.0, 1.5, result.text)
    srt = await api.audio.transcriptions.create(
        model="transcribe", file=("clip.wav", sine_wav(1.5)), response_format="srt")
    assert srt == "1\n00:00:00,000 --> 00:00:01,500\n1.50 seconds of audio in en\n"
    await api.close()


async def test_the_language_reaches_the_upstream(client):
    api = openai_client(client)
    wav = sine_wav(0.5)
    result = await api.audio.transcriptions.create(model="transcribe", file=("a.wav", wav),
                                                   language="de")
    assert result.text == "0.50 seconds of audio in de"
    # the virtual model's own language, when the client sends none
    result = await api.audio.transcriptions.create(model="transcribe-de", file=("a.wav", wav))
    assert result.text == "0.50 seconds of audio in de"
    # the upstream's 400 stays a 400, with its message
    with pytest.raises(openai.BadRequestError) as caught:
        await api.audio.transcriptions.create(model="transcribe", file=("a.wav", wav),
                                              language="fr")
    assert "language 'fr' is not supported" in caught.value.message
    assert caught.value.body["type"] == "invalid_request_error"
    await api.close()


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def echo_pitch(voice: str) -> float:
    """The demo's echo TTS: a sine whose pitch the voice name sets."""
    return 220.0 + 20.0 * (sum(map(ord, voice)) % 10)


async def test_speech_passes_through_with_its_voice(client):
    api = openai_client(client)
    text = "Hello from the upstream."
    response = await api.audio.speech.create(model="speak", input=text, voice="narrator",
                                             response_format="wav")
    samples, rate = read_wav(response.content)
    assert rate == 24000  # the upstream's own rate, kept
    assert len(samples) == int(len(text) * 0.06 * 24000)  # the demo: 0.06 s a character
    assert abs(dominant_hz(samples, rate) - echo_pitch("narrator")) < 2
    # an OpenAI voice name is the virtual model's default: the upstream chooses its own
    response = await api.audio.speech.create(model="speak", input=text, voice="alloy",
                                             response_format="wav")
    samples, rate = read_wav(response.content)
    assert abs(dominant_hz(samples, rate) - echo_pitch("default")) < 2
    await api.close()


async def test_speed_and_format_are_applied_once_by_this_llmux(client):
    api = openai_client(client)
    text = "Twice as fast."
    response = await api.audio.speech.create(model="speak", input=text, voice="narrator",
                                             response_format="wav", speed=2.0)
    samples, _ = read_wav(response.content)
    expected = len(text) * 0.06 * 24000 / 2
    assert abs(len(samples) - expected) < 0.02 * expected  # halved once, not twice
    mp3 = await api.audio.speech.create(model="speak", input=text, voice="narrator")
    assert mp3.response.headers["content-type"] == "audio/mpeg"
    await api.close()


async def test_a_model_of_the_wrong_type_upstream_is_the_upstreams_error(client):
    """``speak-wrong`` is a tts model here, an ASR model on the upstream."""
    api = openai_client(client)
    with pytest.raises(openai.APIStatusError) as caught:
        await api.audio.speech.create(model="speak-wrong", input="hi", voice="x")
    assert caught.value.status_code == 400
    assert "cohere-transcribe" in caught.value.message
    await api.close()
