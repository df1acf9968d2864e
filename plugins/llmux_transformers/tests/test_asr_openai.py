"""Speech-to-text through llmux's real app and the official ``openai`` client: the tiny
random-weight ``cohere_asr`` served by the transformers backend, synthetic speech in every
upload format. The model's words are forced through the plugin's logits-processor seam
(``AsrRecorder``), so the tests can assert on text; durations come from the decoded audio,
so a broken decoder cannot hide behind random text."""

from __future__ import annotations

import json

import urllib.error
import urllib.request
import openai
import pytest
from transformers_fixtures import KEY, AsrRecorder, speech

pytestmark = pytest.mark.slow

MODEL = "cohere-transcribe"


def upload(clip) -> tuple[str, bytes]:
    return (f"speech.{clip.format}", clip.path.read_bytes())


@pytest.mark.parametrize("fmt", speech.FORMATS)
@pytest.mark.parametrize("lang", ["en", "de"])
def test_every_format_duration_and_text(asr_client, speech_clips, asr_recorder, lang, fmt):
    clip = speech_clips[lang, fmt]
    result = asr_client.audio.transcriptions.create(
        model=MODEL, file=upload(clip), language=lang, response_format="verbose_json")
    assert abs(result.duration - clip.duration) < 0.05
    assert result.text == AsrRecorder.text(0) and result.language == lang
    (segment,) = result.segments
    assert segment.start == 0 and abs(segment.end - clip.duration) < 0.05
    assert f"<|{lang}|>" in asr_recorder.prompts[-1]


def test_each_response_format_has_its_structure(asr_client, speech_clips, asr_recorder):
    clip = speech_clips["en", "m4a"]
    text = AsrRecorder.text(0)
    plain = asr_client.audio.transcriptions.create(model=MODEL, file=upload(clip))
    assert plain.text == text  # json is the default
    assert asr_client.audio.transcriptions.create(
        model=MODEL, file=upload(clip), response_format="json").text == text
    assert asr_client.audio.transcriptions.create(
        model=MODEL, file=upload(clip), response_format="text") == text + "\n"
    end = f"{clip.duration:06.3f}"
    srt = asr_client.audio.transcriptions.create(model=MODEL, file=upload(clip),
                                                 response_format="srt")
    assert srt == f"1\n00:00:00,000 --> 00:00:{end.replace('.', ',')}\n{text}\n"
    vtt = asr_client.audio.transcriptions.create(model=MODEL, file=upload(clip),
                                                 response_format="vtt")
    assert vtt == f"WEBVTT\n\n00:00:00.000 --> 00:00:{end}\n{text}\n"
    verbose = asr_client.audio.transcriptions.create(model=MODEL, file=upload(clip),
                                                     response_format="verbose_json")
    assert verbose.model_dump(exclude_none=True) == {
        "task": "transcribe", "language": "en", "duration": round(clip.duration, 3),
        "text": text, "usage": {"type": "duration", "seconds": 7},
        "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": round(clip.duration, 3),
                      "text": text, "tokens": [], "temperature": 0.0}],
    }


def test_long_audio_gives_a_segment_per_chunk(asr_client, speech_clips, asr_recorder):
    clip = speech_clips["long"]
    assert clip.duration > 35
    result = asr_client.audio.transcriptions.create(
        model=MODEL, file=upload(clip), response_format="verbose_json")
    assert len(result.segments) >= 2
    assert abs(result.duration - clip.duration) < 0.05
    texts = [AsrRecorder.text(i) for i in range(len(result.segments))]
    assert [s.text for s in result.segments] == texts
    assert result.text == " ".join(texts)
    assert result.segments[0].start == 0 and abs(result.segments[-1].end - clip.duration) < 0.05
    for a, b in zip(result.segments, result.segments[1:]):
        assert a.end == b.start and 30 <= a.end - a.start <= 35
    srt = asr_client.audio.transcriptions.create(model=MODEL, file=upload(clip),
                                                 response_format="srt")
    assert srt.count(" --> ") == len(texts)


def test_german_reaches_the_processors_prompt(asr_client, speech_clips, asr_recorder):
    clip = speech_clips["de", "mp3"]
    asr_client.audio.transcriptions.create(model=MODEL, file=upload(clip), language="de")
    assert asr_recorder.prompts[-1][4:6] == ["<|de|>", "<|de|>"]
    asr_client.audio.transcriptions.create(model=MODEL, file=upload(clip))  # the default
    assert asr_recorder.prompts[-1][4:6] == ["<|en|>", "<|en|>"]


def test_open_webui_retries_without_the_language(asr_client, speech_clips, asr_recorder):
    clip = speech_clips["en", "mp3"]
    with pytest.raises(openai.BadRequestError) as info:
        asr_client.audio.transcriptions.create(model=MODEL, file=upload(clip), language="fr")
    assert info.value.body["param"] == "language"
    assert "'fr' is not supported by 'cohere-asr'; use one of: en, de" in info.value.message
    retry = asr_client.audio.transcriptions.create(model=MODEL, file=upload(clip))
    assert retry.text == AsrRecorder.text(0)


def http(server, path: str, body: bytes | None = None, content_type: str | None = None):
    """(status, JSON body) of a plain HTTP request: forms the openai client cannot send."""
    headers = {"Authorization": f"Bearer {KEY}"}
    if content_type:
        headers["Content-Type"] = content_type
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", data=body,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def raw_post(server, fields: dict, file: bytes | None):
    boundary = "llmuxtestboundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    if file is not None:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                     f'filename="clip.mp3"\r\nContent-Type: audio/mpeg\r\n\r\n'.encode()
                     + file + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return http(server, "/v1/audio/transcriptions", body,
                f"multipart/form-data; boundary={boundary}")


BAD = [  # form fields, file, status, param, words in the message
    ({}, "mp3", 400, "model", "'model' is required"),
    ({"model": MODEL}, None, 400, "file", "'file' part"),
    ({"model": MODEL}, b"", 400, "file", "empty"),
    ({"model": MODEL}, b"Hello, I am a text file.\n", 400, "file", "not audio"),
    ({"model": "chat"}, "mp3", 400, "model", "'chat' is a llm model"),
    ({"model": "voice"}, "mp3", 400, "model", "'voice' is a tts model"),
    ({"model": MODEL, "language": "tlh"}, "mp3", 400, "language", "use one of: en, de"),
    ({"model": MODEL}, "big", 413, None, "limit of 2 MB"),
]


@pytest.mark.parametrize("fields, file, status, param, words", BAD)
def test_bad_input_then_the_server_keeps_serving(asr_server, asr_client, speech_clips,
                                                 asr_recorder, fields, file, status, param,
                                                 words):
    data = {"mp3": speech_clips["en", "mp3"].path.read_bytes(), "big": b"\0" * (3 << 20)}.get(
        file, file) if isinstance(file, str) else file
    got, body = raw_post(asr_server, fields, data)
    assert got == status, body
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == param and words in body["error"]["message"]
    ok = asr_client.audio.transcriptions.create(model=MODEL,
                                                file=upload(speech_clips["de", "ogg"]))
    assert ok.text == AsrRecorder.text(0)


def test_the_openai_client_surfaces_errors(asr_client, speech_clips):
    with pytest.raises(openai.BadRequestError) as info:
        asr_client.audio.transcriptions.create(model=MODEL, file=("notes.mp3", b"not audio"))
    assert "not audio in a supported format" in info.value.message
    with pytest.raises(openai.BadRequestError):
        asr_client.audio.transcriptions.create(model="chat", file=upload(speech_clips["en", "wav"]))
    with pytest.raises(openai.NotFoundError):
        asr_client.audio.transcriptions.create(model="whisper-1",
                                               file=upload(speech_clips["en", "wav"]))


def test_scheduled_as_asr(asr_server, asr_client, speech_clips, asr_recorder):
    asr_client.audio.transcriptions.create(model=MODEL, file=upload(speech_clips["en", "wav"]))
    _, health = http(asr_server, "/health")
    (loaded,) = [m for m in health["loaded"] if m["model"] == "cohere-asr"]
    assert loaded["type"] == "asr" and loaded["backend"] == "transformers"
    assert json.dumps(loaded)  # plain JSON
