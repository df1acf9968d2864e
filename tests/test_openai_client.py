"""The official openai package against a real llmux server on the demo config."""

from __future__ import annotations

import openai
import pytest

from llmux.testing import sine_wav

from .conftest import DEMO_KEY
from .test_config import PROD_VIRTUAL


@pytest.fixture
async def client(demo_server):
    async with openai.AsyncOpenAI(base_url=demo_server + "/v1", api_key=DEMO_KEY,
                                  max_retries=0) as c:
        yield c


async def test_lists_chats_and_streams(client):
    models = await client.models.list()
    assert [m.id for m in models.data] == PROD_VIRTUAL

    reply = await client.chat.completions.create(
        model="qwen3.5-9b-fp8-thinking", messages=[{"role": "user", "content": "ping pong"}])
    assert reply.choices[0].message.content == "ping pong"
    assert reply.choices[0].message.model_extra["reasoning_content"]
    assert reply.usage.completion_tokens > 0

    stream = await client.chat.completions.create(
        model="qwen3.5-9b-fp8-instruct", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "one two three four"}])
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) == 4  # token by token, not one block
    assert chunks[-1].usage.completion_tokens == 4


async def test_errors_map_to_openai_exceptions(client, demo_server):
    async with openai.AsyncOpenAI(base_url=demo_server + "/v1", api_key="sk-wrong-000000000000",
                                  max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            await bad.models.list()
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(
            model="gpt-5", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="Chatterbox-Multilingual", messages=[{"role": "user", "content": "x"}])
    assert info.value.param == "model"
    assert "/v1/audio/speech" in info.value.message


async def test_speech_and_transcription_round_trip(client):
    speech = await client.audio.speech.create(
        model="Chatterbox", voice="alloy", input="Hello from the demo runtime.")
    assert speech.response.headers["content-type"] == "audio/mpeg"
    audio = speech.read()
    assert audio[:3] == b"ID3" or audio[:2] == b"\xff\xfb"

    result = await client.audio.transcriptions.create(
        model="cohere-transcribe", file=("clip.wav", sine_wav(2.5, 22050)),
        response_format="verbose_json")
    assert abs(result.duration - 2.5) < 0.05
    assert result.language == "en"
    text = await client.audio.transcriptions.create(
        model="cohere-transcribe", file=("clip.wav", sine_wav(1.0, 22050)), language="de")
    assert text.text == "1.00 seconds of audio in de"
    with pytest.raises(openai.BadRequestError) as info:
        await client.audio.transcriptions.create(
            model="cohere-transcribe", file=("clip.wav", sine_wav(1.0, 22050)), language="fr")
    assert "supported: en, de" in info.value.message
    with pytest.raises(openai.BadRequestError):
        await client.audio.transcriptions.create(
            model="cohere-transcribe", file=("clip.wav", b"this is not audio at all"))
    with pytest.raises(openai.BadRequestError):
        await client.audio.speech.create(model="qwen3.5-4b-instruct", voice="alloy", input="x")
