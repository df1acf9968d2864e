"""Malformed requests (issue #14): each is a 4xx with OpenAI's error JSON, refused before any
model is leased or loaded, and the server goes on answering afterwards."""

from __future__ import annotations

import base64
import io
import wave

import pytest

from llmux.audio import decode
from llmux.audio.decode import decode_audio
from llmux.errors import InvalidRequest
from llmux.testing import sine_wav

from .conftest import AUTH
from .test_http import assert_openai_error

CHAT = "/v1/chat/completions"
SPEECH = "/v1/audio/speech"
TRANSCRIBE = "/v1/audio/transcriptions"
LLM = "qwen3.5-4b-thinking"  # vision and tools
FORM = "multipart/form-data; boundary=b0undary"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)


def chat(*messages, **extra) -> dict:
    return {"model": LLM, "messages": list(messages) or [{"role": "user", "content": "hi"}],
            **extra}


def user(*parts) -> dict:
    return {"role": "user", "content": list(parts)}


def image(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def data_url(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64," + base64.b64encode(data).decode()


async def refused(client, path: str, *, status: int = 400, param=None, code=None,
                  **request) -> dict:
    """POST ``request``; assert the error shape, that nothing was loaded and that the server
    still answers a good request on the same route."""
    resp = await client.post(path, headers={**AUTH, **request.pop("headers", {})}, **request)
    body = await resp.json()
    assert resp.status == status, body
    assert_openai_error(body, type_="invalid_request_error", param=param, code=code)
    assert (await (await client.get("/health")).json())["loaded"] == []
    if path == TRANSCRIBE:
        good = await client.post(path, headers={**AUTH, "Content-Type": FORM},
                                 data=_form(sine_wav(0.5)))
    elif path == SPEECH:
        good = await client.post(path, headers=AUTH,
                                 json={"model": "Chatterbox", "input": "hi",
                                       "response_format": "wav"})
    else:
        good = await client.post(path, headers=AUTH, json=chat())
    assert good.status == 200, await good.text()
    return body


def _form(audio: bytes, boundary: str = "b0undary") -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n"
            f"cohere-transcribe\r\n--{boundary}\r\nContent-Disposition: form-data; "
            f"name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n").encode() + (
        audio + f"\r\n--{boundary}--\r\n".encode())


# ------------------------------------------------------------------------ 1. JSON nesting


@pytest.mark.parametrize("depth", [200, 100_000])
async def test_deeply_nested_json_is_a_400(demo_client, depth):
    raw = b'{"model": "' + LLM.encode() + b'", "messages": ' + b"[" * depth + b"]" * depth + b"}"
    body = await refused(demo_client, CHAT, data=raw,
                         headers={"Content-Type": "application/json"})
    assert "nested" in body["error"]["message"]


# ------------------------------------------------------------------------ 2. multipart


MULTIPART_CASES = {
    "no boundary": ("multipart/form-data", _form(sine_wav(0.1))),
    "no starting boundary": (FORM, _form(sine_wav(0.1)).replace(b"--b0undary", b"")),
    "cut before the closing boundary": (FORM,
                                        _form(sine_wav(0.1))[:-40]),
    "garbage": (FORM, b"\0\1\2 not a form at all"),
}


@pytest.mark.parametrize("case", MULTIPART_CASES)
async def test_broken_multipart_is_a_400(demo_client, case):
    content_type, raw = MULTIPART_CASES[case]
    body = await refused(demo_client, TRANSCRIBE, data=raw,
                         headers={"Content-Type": content_type})
    assert "multipart" in body["error"]["message"]


# ------------------------------------------------------------------------ 3. content parts


@pytest.mark.parametrize("text", [5, None, ["a"], {"t": "x"}])
async def test_a_text_part_whose_text_is_not_a_string(demo_client, text):
    await refused(demo_client, CHAT, json=chat(user({"type": "text", "text": text})),
                  param="messages[0].content[0].text")


async def test_an_input_audio_part_without_data(demo_client):
    await refused(demo_client, CHAT, json=chat(user({"type": "input_audio", "input_audio": "x"})),
                  param="messages[0].content[0].input_audio")


async def test_a_refusal_part_whose_refusal_is_not_a_string(demo_client):
    message = {"role": "assistant", "content": [{"type": "refusal", "refusal": 1}]}
    await refused(demo_client, CHAT, json=chat({"role": "user", "content": "hi"}, message),
                  param="messages[1].content[0].refusal")


# ------------------------------------------------------------------------ 4. tools


@pytest.mark.parametrize("parameters, param", [
    ({"properties": {"city": "string"}}, "tools[0].function.parameters.properties.city"),
    ({"properties": {"city": None}}, "tools[0].function.parameters.properties.city"),
    ({"properties": ["city"]}, "tools[0].function.parameters.properties"),
    ({"properties": {"city": {"type": "string"}}, "required": "city"},
     "tools[0].function.parameters.required"),
])
async def test_tool_parameters_that_are_not_schemas(demo_client, parameters, param):
    parameters = {"type": "object", **parameters}
    tool = {"type": "function", "function": {"name": "weather", "parameters": parameters}}
    await refused(demo_client, CHAT, json=chat(tools=[tool]), param=param)


# ------------------------------------------------------------------------ 5. lone surrogates


def body_with(message: str) -> bytes:
    """A chat body around ``message``, JSON written by hand to keep its escapes."""
    return ('{"model": "' + LLM + '", "messages": [' + message + "]}").encode()


async def test_a_lone_surrogate_in_message_text(demo_client):
    raw = body_with('{"role": "user", "content": "a \\ud800 b"}')
    await refused(demo_client, CHAT, data=raw, headers={"Content-Type": "application/json"},
                  param="messages[0].content")


async def test_a_lone_surrogate_in_a_text_part(demo_client):
    raw = body_with('{"role": "user", "content": [{"type": "text", "text": "\\udfff"}]}')
    await refused(demo_client, CHAT, data=raw, headers={"Content-Type": "application/json"},
                  param="messages[0].content[0].text")


async def test_a_lone_surrogate_in_speech_input(demo_client):
    raw = b'{"model": "Chatterbox", "input": "hello \\ud83d world"}'
    await refused(demo_client, SPEECH, data=raw, headers={"Content-Type": "application/json"},
                  param="input")


async def test_a_surrogate_pair_is_a_character_and_fine(demo_client):
    raw = body_with('{"role": "user", "content": "\\ud83d\\ude00"}')
    resp = await demo_client.post(CHAT, headers={**AUTH, "Content-Type": "application/json"},
                                  data=raw)
    assert resp.status == 200, await resp.text()


# ------------------------------------------------------------------------ 6. images


@pytest.mark.parametrize("url", [
    "data:image/png;base64,!!!not base64!!!",
    "data:image/png;base64,iVBORw0KGgo",  # bad padding
    data_url("text/plain", b"hello"),
    data_url("image/png", b"hello, not a png"),
    data_url("image/png", b""),
    "data:image/png,percent-encoded",
    "data:image/png;base64",
])
async def test_an_image_data_url_that_is_not_an_image(demo_client, url):
    await refused(demo_client, CHAT, json=chat(user({"type": "text", "text": "what"},
                                                    image(url))),
                  param="messages[0].content[1].image_url")


@pytest.mark.parametrize("data", [
    PNG, b"\xff\xd8\xff\xe0" + bytes(16), b"GIF89a" + bytes(16),
    b"RIFF\0\0\0\0WEBPVP8 " + bytes(16), b"BM" + bytes(32),
])
async def test_each_known_image_type_passes(demo_client, data):
    # the media type is not trusted to name the format: the magic decides
    body = chat(user({"type": "text", "text": "what"}, image(data_url("image/png", data))))
    resp = await demo_client.post(CHAT, headers=AUTH, json=body)
    assert resp.status == 200, await resp.text()


# ------------------------------------------------------------------------ 7. seed


@pytest.mark.parametrize("seed", [-(2**63) - 1, 2**64, 2**70, 1.5, "7", True])
async def test_seed_out_of_range_or_not_an_integer(demo_client, seed):
    await refused(demo_client, CHAT, json=chat(seed=seed), param="seed")


@pytest.mark.parametrize("seed", [-1, -(2**63), 0, 42, 2**63 - 1, 2**64 - 1])
async def test_seed_in_range(demo_client, seed):
    resp = await demo_client.post(CHAT, headers=AUTH, json=chat(seed=seed))
    assert resp.status == 200, await resp.text()


# ------------------------------------------------------------------------ 8. tool_calls


@pytest.mark.parametrize("tool_calls, param", [
    ("call it", "messages[1].tool_calls"),
    ({"id": "c1"}, "messages[1].tool_calls"),
    (["c1"], "messages[1].tool_calls[0]"),
    ([{"id": "c1", "type": "function"}], "messages[1].tool_calls[0].function"),
    ([{"id": "c1", "type": "function", "function": {"arguments": "{}"}}],
     "messages[1].tool_calls[0].function.name"),
    ([{"id": "c1", "type": "function", "function": {"name": "f", "arguments": 5}}],
     "messages[1].tool_calls[0].function.arguments"),
])
async def test_assistant_tool_calls_that_are_malformed(demo_client, tool_calls, param):
    messages = [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": None, "tool_calls": tool_calls},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"}]
    await refused(demo_client, CHAT, json=chat(*messages), param=param)


async def test_well_formed_tool_calls_pass(demo_client):
    call = {"id": "c1", "type": "function",
            "function": {"name": "f", "arguments": '{"x": 1}'}}
    messages = [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"}]
    resp = await demo_client.post(CHAT, headers=AUTH, json=chat(*messages))
    assert resp.status == 200, await resp.text()


# ------------------------------------------------------------------------ 9. speech language


@pytest.mark.parametrize("language", [5, ["en"], {"code": "en"}, True])
async def test_speech_language_that_is_not_a_string(demo_client, language):
    await refused(demo_client, SPEECH, json={"model": "Chatterbox", "input": "hi",
                                             "language": language}, param="language")


# ------------------------------------------------------------------------ 10. audio length


def _wav(rate: int, frames: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(2 * frames))
    return out.getvalue()


async def test_a_wav_declaring_1_hz_is_refused_from_its_header(demo_client):
    audio = _wav(1, 50_000)  # 100 KB declaring almost 14 hours
    body = await refused(demo_client, TRANSCRIBE, data=_form(audio),
                         headers={"Content-Type": FORM},
                         param="file", code="audio_too_long")
    assert "(833.3 minutes) is longer than the limit" in body["error"]["message"]


def test_the_declared_length_is_checked_before_decoding():
    with pytest.raises(InvalidRequest) as info:
        decode_audio(sine_wav(2.0), 16000, max_seconds=1.5)
    assert "minutes) is longer than the limit of 0.025 minutes" in info.value.message
    assert info.value.code == "audio_too_long" and info.value.param == "file"


def test_the_decoded_length_is_checked_when_the_header_has_none(monkeypatch):
    # WebM from a browser's MediaRecorder declares no duration: the frames are counted
    monkeypatch.setattr(decode, "_declared_seconds", lambda container, stream: None)
    with pytest.raises(InvalidRequest) as info:
        decode_audio(sine_wav(2.0), 16000, max_seconds=1.5)
    assert "the audio is longer than the limit" in info.value.message
    assert info.value.code == "audio_too_long"


async def test_a_short_wav_at_an_absurd_rate_is_refused(demo_client):
    audio = _wav(1, 4_000)  # 8 KB declaring 67 minutes: 257 MB of PCM at 16 kHz
    body = await refused(demo_client, TRANSCRIBE, data=_form(audio),
                         headers={"Content-Type": FORM}, param="file")
    assert "sample rate of 1 Hz" in body["error"]["message"]
