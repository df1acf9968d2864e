"""POST /v1/audio/transcriptions on the demo config (the echo runtime): response formats,
decoding by content, and every bad input with its status and OpenAI error body."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from ..conftest import AUTH, demo_models
from ..test_http import assert_openai_error
from . import speech

URL = "/v1/audio/transcriptions"


def form(fields: dict, file: bytes | None = None, *, filename: str = "clip.wav",
         content_type: str = "audio/wav") -> aiohttp.FormData:
    data = aiohttp.FormData(default_to_multipart=True)
    for key, value in fields.items():
        data.add_field(key, value)
    if file is not None:
        data.add_field("file", file, filename=filename, content_type=content_type)
    return data


async def post(client, fields: dict, file: bytes | None = None, **kw):
    resp = await client.post(URL, data=form(fields, file, **kw), headers=AUTH)
    return resp.status, resp


@pytest.mark.parametrize("fmt", speech.FORMATS)
async def test_each_format_by_content_whatever_its_name(demo_client, clips, fmt):
    clip = clips["de", fmt]
    # the name and content type lie: the decoder goes by the bytes
    status, resp = await post(demo_client, {"model": "cohere-transcribe",
                                            "response_format": "verbose_json"},
                              clip.path.read_bytes(), filename="recording.txt",
                              content_type="application/octet-stream")
    body = await resp.json()
    assert status == 200, body
    assert abs(body["duration"] - clip.duration) < 0.05
    assert body["text"] == f"{round(clip.duration, 2):.2f} seconds of audio in en"


async def test_response_formats(demo_client, clips):
    audio = clips["en", "mp3"].path.read_bytes()
    duration = clips["en", "mp3"].duration
    text = f"{duration:.2f} seconds of audio in en"
    results = {}
    for fmt in ("json", "text", "verbose_json", "srt", "vtt"):
        status, resp = await post(demo_client, {"model": "cohere-transcribe",
                                                "response_format": fmt}, audio)
        assert status == 200, await resp.text()
        results[fmt] = (resp.content_type, await resp.text())
    assert results["json"][0] == "application/json"
    assert json.loads(results["json"][1]) == {"text": text}
    assert results["text"] == ("text/plain", text + "\n")
    verbose = json.loads(results["verbose_json"][1])
    assert verbose["task"] == "transcribe" and verbose["language"] == "en"
    assert verbose["segments"][0]["start"] == 0 and verbose["segments"][-1]["end"] == round(
        duration, 3)
    end = f"00:00:0{duration:.3f}"
    srt = f"1\n00:00:00,000 --> {end.replace('.', ',')}\n{text}\n"
    assert results["srt"] == ("text/plain", srt)
    assert results["vtt"] == ("text/vtt", f"WEBVTT\n\n00:00:00.000 --> {end}\n{text}\n")


async def test_language_default_and_open_webui_retry(demo_client, clips):
    audio = clips["de", "wav"].path.read_bytes()
    status, resp = await post(demo_client, {"model": "cohere-transcribe", "language": "de"}, audio)
    assert status == 200 and (await resp.json())["text"].endswith(" in de")
    status, resp = await post(demo_client, {"model": "cohere-transcribe", "language": "fr"}, audio)
    body = await resp.json()
    assert status == 400
    assert_openai_error(body, type_="invalid_request_error", param="language")
    assert "supported: en, de" in body["error"]["message"]
    # Open WebUI then retries without a language: the virtual model's default applies
    status, resp = await post(demo_client, {"model": "cohere-transcribe"}, audio)
    assert status == 200 and (await resp.json())["text"].endswith(" in en")


BAD = [  # fields, file, status, param, words in the message
    ({}, "wav", 400, "model", "'model' is required"),
    ({"model": "cohere-transcribe"}, None, 400, "file", "'file' part"),
    ({"model": "cohere-transcribe"}, b"", 400, "file", "empty"),
    ({"model": "cohere-transcribe"}, b"this is not audio at all", 400, "file", "not audio"),
    ({"model": "qwen3.5-4b-instruct"}, "wav", 400, "model", "is a llm model"),
    ({"model": "Chatterbox"}, "wav", 400, "model", "is a tts model"),
    ({"model": "no-such-model"}, "wav", 404, "model", "does not exist"),
    ({"model": "cohere-transcribe", "response_format": "mp3"}, "wav", 400, "response_format",
     "json, text, verbose_json, srt, vtt"),
    ({"model": "cohere-transcribe", "temperature": "2"}, "wav", 400, "temperature", "between 0"),
    ({"model": "cohere-transcribe", "temperature": "warm"}, "wav", 400, "temperature", "number"),
    ({"model": "cohere-transcribe", "stream": "true"}, "wav", 400, "stream", "not supported"),
]


@pytest.mark.parametrize("fields, file, status, param, words", BAD)
async def test_bad_input_gets_its_status_and_an_openai_error(demo_client, clips, fields, file,
                                                             status, param, words):
    audio = clips["en", "wav"].path.read_bytes() if file == "wav" else file
    got, resp = await post(demo_client, fields, audio)
    body = await resp.json()
    assert got == status, body
    assert_openai_error(body, type_="invalid_request_error", param=param)
    assert words in body["error"]["message"]
    got, resp = await post(demo_client, {"model": "cohere-transcribe"},
                           clips["en", "wav"].path.read_bytes())
    assert got == 200  # and the server goes on serving


async def test_a_json_body_is_415(demo_client):
    resp = await demo_client.post(URL, json={"model": "cohere-transcribe"}, headers=AUTH)
    assert resp.status == 415
    assert_openai_error(await resp.json(), type_="invalid_request_error",
                        code="unsupported_media_type")


async def _oversized_upload(client, *, total: int, chunk: int = 64 * 1024):
    """A multipart upload streamed with chunked transfer encoding (no Content-Length);
    returns the response and how many bytes the client had produced when it arrived."""
    boundary = "llmuxboundary"
    sent = {"bytes": 0}

    async def body():
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n"
               f"cohere-transcribe\r\n--{boundary}\r\nContent-Disposition: form-data; "
               f"name=\"file\"; filename=\"big.wav\"\r\nContent-Type: audio/wav\r\n\r\n").encode()
        block = b"\0" * chunk
        while sent["bytes"] < total:
            sent["bytes"] += len(block)
            yield block
            await asyncio.sleep(0)
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    resp = await client.post(URL, data=body(), headers=headers)
    return resp, sent["bytes"]


async def test_413_before_an_oversized_chunked_upload_is_buffered(make_client, clips):
    models = demo_models()
    models["server"]["audio_body_limit_mb"] = 1
    client = await make_client(models)
    resp, produced = await _oversized_upload(client, total=64 * 1024 * 1024)
    assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in resp.request_info.headers
    assert resp.status == 413
    body = await resp.json()
    assert_openai_error(body, type_="invalid_request_error", code="payload_too_large")
    assert "limit of 1 MB" in body["error"]["message"]
    assert produced < 8 * 1024 * 1024  # answered long before the 64 MB were sent
    resp.close()
    status, resp = await post(client, {"model": "cohere-transcribe"},
                              clips["en", "wav"].path.read_bytes())
    assert status == 200  # the server goes on serving


async def test_413_from_content_length_alone(make_client):
    models = demo_models()
    models["server"]["audio_body_limit_mb"] = 0.01
    client = await make_client(models)
    status, resp = await post(client, {"model": "cohere-transcribe"}, b"\0" * 20000)
    assert status == 413
    assert_openai_error(await resp.json(), type_="invalid_request_error",
                        code="payload_too_large")
