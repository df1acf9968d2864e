"""The three Chatterbox variants through llmux's HTTP app, driven with ``openai``'s
``audio.speech.create``, on random-weight checkpoints (see conftest.py).

Tests run in file order and share one server: Turbo's tests, then English, then
Multilingual, so each model loads once and each switch evicts the one before.
"""

from __future__ import annotations

import numpy as np
import openai
import pytest
from chatterbox_config import CAPS, LANGUAGES, THIRD_PARTY_WARNINGS

pytestmark = [pytest.mark.filterwarnings(f) for f in THIRD_PARTY_WARNINGS]

RATE = 24000
SAMPLES_PER_TOKEN = 960  # S3Gen: 25 speech tokens per second of 24 kHz audio
PAUSE = 0.15  # llmux_chatterbox.synth.PAUSE_SECONDS
CONTENT_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac",
                 "flac": "audio/flac", "wav": "audio/wav", "pcm": "audio/pcm"}
TEXT = "Hello there. This is a test of the speech route."
# (virtual model, physical model, response_format of the HTTP request)
VARIANTS = {
    "turbo": ("Chatterbox-Turbo", "chatterbox-turbo", "wav"),
    "english": ("Chatterbox", "chatterbox", None),  # no format: mp3, as Open WebUI expects
    "multilingual": ("Chatterbox-Multilingual", "chatterbox-multilingual", "opus"),
}


def decode(data: bytes, fmt: str) -> np.ndarray:
    """Any response_format -> float32 mono samples at 24 kHz, decoded with PyAV."""
    if fmt == "pcm":
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    from llmux.audio.decode import decode_audio

    return decode_audio(data, RATE)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def expected_seconds(speech, chunks: int, turbo: bool) -> float:
    """What S3Gen makes of the tokens: 960 samples each, Turbo adds 3 silence tokens per
    chunk, and the chunks are joined with a pause."""
    tokens = speech.speech_tokens + (3 * chunks if turbo else 0)
    return tokens * SAMPLES_PER_TOKEN / RATE + PAUSE * (chunks - 1)


def loaded(server) -> list[str]:
    import json
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health", timeout=30) as reply:
        return [m["model"] for m in json.load(reply)["loaded"]]


def speak(client, model: str, text: str = TEXT, **kwargs):
    return client.audio.speech.with_raw_response.create(model=model, input=text,
                                                        voice="alloy", **kwargs)


# --------------------------------------------------------------------------- the route


@pytest.mark.parametrize("kwargs, param, message", [
    ({"model": "Chatterbox", "input": ""}, "input", "'input' must be a non-empty string"),
    ({"model": "Chatterbox", "input": "x" * 4097}, "input", "longer than 4096 characters"),
    ({"model": "Chatterbox", "input": "Hi.", "response_format": "ogg"}, "response_format",
     "response_format must be one of mp3, opus, aac, flac, wav, pcm"),
    ({"model": "chat", "input": "Hi."}, "model", "'chat' is a llm model"),
    ({"model": "asr", "input": "Hi."}, "model", "'asr' is a asr model"),
])
def test_bad_requests_are_400_before_any_model_loads(client, server, kwargs, param, message):
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.speech.create(voice="alloy", **kwargs)
    assert info.value.status_code == 400
    assert info.value.body["param"] == param
    assert message in info.value.message
    assert loaded(server) == []  # refused before any model was touched; the tests below
    # are served by the same server afterwards


# --------------------------------------------------------------------------- each variant


def check_variant(variant, client, server, recorder, text: str = TEXT, **extra):
    """One synthesis over HTTP, then that audio in every response_format."""
    from llmux_chatterbox.text import split_sentences

    from llmux.audio.encode import content_type, encode_audio

    virtual, physical, fmt = VARIANTS[variant]
    if fmt:
        extra["response_format"] = fmt
    reply = speak(client, virtual, text, **extra)
    fmt = fmt or "mp3"
    assert reply.headers["content-type"] == CONTENT_TYPES[fmt]

    # Loading this variant evicted the one before: one model at a time.
    assert loaded(server) == [physical]

    speech = recorder.last
    chunks = len(split_sentences(text))
    assert speech.sample_rate == RATE
    assert speech.samples.dtype == np.float32 and speech.samples.ndim == 1
    # The cap holds: a random T3 rarely samples its stop token, so without the cap each
    # chunk would run to chatterbox's built-in 1000 tokens (40 s of audio).
    assert 0 < speech.speech_tokens <= CAPS[physical] * chunks
    seconds = expected_seconds(speech, chunks, turbo=variant == "turbo")
    assert abs(len(speech.samples) / RATE - seconds) <= 0.05 * chunks
    assert rms(speech.samples) > 0

    over_http = decode(reply.content, fmt)
    assert rms(over_http) > 0
    assert abs(len(over_http) / RATE - seconds) <= 0.1 * chunks

    # The same audio in every response_format the core encodes.
    for each in CONTENT_TYPES:
        assert content_type(each) == CONTENT_TYPES[each]
        samples = decode(encode_audio(speech.samples, speech.sample_rate, each), each)
        assert rms(samples) > 0, each
        assert abs(len(samples) / RATE - len(speech.samples) / RATE) < 0.1, each
    return speech


# --------------------------------------------------------------------------- Turbo


def test_turbo_speaks_and_every_format_decodes(client, server, recorder):
    # Two chunks: long input is split into sentences, synthesised one by one and joined.
    text = ("The first sentence of this longer input is here, and it goes on for quite a while "
            "so that it fills most of one chunk of text on its own, as long input does. The "
            "second sentence follows it, and it is long enough as well that the two of them "
            "together cannot share a single chunk of text.")
    from llmux_chatterbox.text import split_sentences

    assert len(split_sentences(text)) == 2
    check_variant("turbo", client, server, recorder, text)


def test_token_cap_bounds_a_long_sentence(client, recorder):
    sentence = ("This single sentence goes on and on without a stop so that an untrained "
                "model would keep sampling speech tokens for a very long time")
    reply = speak(client, "Chatterbox-Turbo", sentence, response_format="pcm")
    speech = recorder.last
    assert speech.speech_tokens <= CAPS["chatterbox-turbo"]
    seconds = len(reply.content) / 2 / RATE
    assert seconds <= (CAPS["chatterbox-turbo"] + 3) * SAMPLES_PER_TOKEN / RATE + 0.05


def test_reference_clip_voice_changes_the_conditioning(client, server):
    reply = speak(client, "Chatterbox-Turbo", "A new voice.", response_format="wav")
    handle = server.handle("chatterbox-turbo")
    builtin = handle.conditionals["default"]
    assert handle.tts.conds is builtin  # "alloy" maps to the configured default voice

    reply = client.audio.speech.with_raw_response.create(
        model="Chatterbox-Turbo", input="A new voice.", voice="narrator", response_format="wav")
    assert rms(decode(reply.content, "wav")) > 0
    narrator = handle.conditionals["narrator"]
    assert handle.tts.conds is narrator
    # Prepared from voices/narrator.wav (under models_dir): another speaker embedding,
    # other prompt tokens and another prompt for S3Gen.
    assert not np.allclose(narrator.t3.speaker_emb.numpy(), builtin.t3.speaker_emb.numpy())
    assert not np.array_equal(narrator.gen["prompt_feat"].numpy(),
                              builtin.gen["prompt_feat"].numpy())


@pytest.mark.parametrize("voice, language, message", [
    ("nobody", None, "unknown voice 'nobody'; this model's voices are: default, narrator"),
    (None, "de", "Chatterbox turbo speaks English only, not 'de'"),
])
def test_turbo_refuses_what_it_cannot_do(client, voice, language, message):
    kwargs = {"voice": voice or "alloy"}
    if language:
        kwargs["extra_body"] = {"language": language}
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.speech.create(model="Chatterbox-Turbo", input="Hello.", **kwargs)
    assert message in info.value.message
    assert info.value.body["type"] == "invalid_request_error"
    assert info.value.body["param"] == ("voice" if voice else "language")


# --------------------------------------------------------------------------- English


def test_english_speaks_and_every_format_decodes(client, server, recorder):
    check_variant("english", client, server, recorder)


def test_english_refuses_other_languages(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.speech.create(model="Chatterbox", input="Bonjour.", voice="alloy",
                                   extra_body={"language": "fr"})
    assert "Chatterbox english speaks English only, not 'fr'" in info.value.message


# --------------------------------------------------------------------------- Multilingual


@pytest.mark.parametrize("language, message", [
    ("es", "language 'es' is not supported by this Chatterbox Multilingual model; "
           f"use one of: {', '.join(LANGUAGES)}"),
    ("xx", "language 'xx' is not supported"),
])
def test_multilingual_refuses_other_languages(client, language, message):
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.speech.create(model="Chatterbox-Multilingual", input="Hola.",
                                   voice="alloy", extra_body={"language": language})
    assert message in info.value.message
    assert info.value.body["param"] == "language"




def test_multilingual_speaks_and_every_format_decodes(client, server, recorder):
    # The virtual model's behaviour says German; the request's "language" overrides it.
    check_variant("multilingual", client, server, recorder, "Bonjour. Comment allez-vous?",
                  extra_body={"language": "fr"})
    assert recorder.requests[-1].language == "fr"
    speak(client, "Chatterbox-Multilingual", "Guten Tag.", response_format="pcm")
    # No language sent: the plugin gets none, and the behaviour's is its fallback.
    last = recorder.requests[-1]
    assert last.language is None and last.behaviour.language == "de"
    # Its alignment analyzer's attention hooks do not pile up from request to request.
    from llmux_chatterbox.fixes import ANALYZER_MODULE

    tfmr = server.handle("chatterbox-multilingual").tts.t3.tfmr
    hooks = [h for m in tfmr.modules() for h in m._forward_hooks.values()]
    assert hooks  # transformers' own output-capturing hooks stay
    assert [h for h in hooks if h.__module__ == ANALYZER_MODULE] == []
