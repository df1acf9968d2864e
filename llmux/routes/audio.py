"""POST /v1/audio/transcriptions (multipart upload) and POST /v1/audio/speech (JSON)."""

from __future__ import annotations

import asyncio

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ..appstate import CONFIG, EXECUTOR, MANAGER, RUNTIMES
from ..audio import subtitles
from ..bridge import run_to_completion
from ..errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from ..types import Cancellation, SpeechRequest, TranscriptionRequest
from .common import MB, read_json, resolve_model

routes = web.RouteTableDef()

TRANSCRIPTION_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
OPENAI_VOICES = {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage",
                 "shimmer", "verse", "marin", "cedar"}
MAX_INPUT_CHARS = 4096


async def _run(request: web.Request, fn, *args):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[EXECUTOR], fn, *args)


async def _read_form(request: web.Request, limit_mb: float) -> tuple[dict, bytes | None]:
    """Stream the multipart form; the 413 comes before an oversized file is buffered."""
    if not request.content_type.startswith("multipart/"):
        raise UnsupportedMediaType(
            f"expected multipart/form-data with a 'file' part, got {request.content_type}"
        )
    limit = int(limit_mb * MB)
    too_large = (f"the upload exceeds the limit of {limit_mb:g} MB "
                 "(server.audio_body_limit_mb in models.yaml)")
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(too_large)
    try:
        reader = await request.multipart()
    except (KeyError, ValueError):
        raise InvalidRequest("the multipart/form-data Content-Type has no boundary parameter "
                             "(let the HTTP client set the header)") from None
    try:
        return await _read_parts(reader, limit, too_large)
    except (ValueError, AssertionError, HttpProcessingError) as exc:
        # aiohttp's reader: no starting boundary, a body cut short, broken part headers
        raise InvalidRequest(f"the multipart/form-data body is malformed: {exc!s:.200}") from None


async def _read_parts(reader: MultipartReader, limit: int,
                      too_large: str) -> tuple[dict, bytes | None]:
    fields: dict[str, str] = {}
    data: bytes | None = None
    total = 0
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            raise InvalidRequest("nested multipart parts are not supported; send a flat form")
        chunks = []
        while chunk := await part.read_chunk(256 * 1024):
            total += len(chunk)
            if total > limit:
                raise PayloadTooLarge(too_large)
            chunks.append(chunk)
        if part.name == "file":
            data = b"".join(chunks)
        elif part.name:
            fields[part.name] = b"".join(chunks).decode("utf-8", "replace")
    return fields, data


@routes.post("/v1/audio/transcriptions")
async def transcriptions(request: web.Request) -> web.Response:
    """OpenAI's transcription endpoint. The upload is decoded by content to PCM at the rate
    the backend declares; the runtime returns text and segments (chunk boundaries: see
    docs/audio.md); the response is shaped here."""
    app = request.app
    fields, data = await _read_form(request, app[CONFIG].server.audio_body_limit_mb)
    virtual = resolve_model(request, fields.get("model"), "asr")
    if data is None:
        raise InvalidRequest("the form needs a 'file' part with the audio", param="file")
    fmt = fields.get("response_format") or "json"
    if fmt not in TRANSCRIPTION_FORMATS:
        raise InvalidRequest(
            f"response_format must be one of {', '.join(TRANSCRIPTION_FORMATS)}",
            param="response_format",
        )
    if fields.get("stream", "false").strip().lower() not in ("", "false", "0"):
        raise InvalidRequest("streamed transcriptions are not supported; leave 'stream' unset",
                             param="stream")
    temperature = _temperature(fields.get("temperature"))
    physical = virtual.physical
    rate = app[RUNTIMES].get(physical.backend).info.asr_sample_rate
    from ..audio.decode import decode_audio

    samples = await _run(request, decode_audio, data, rate)
    del data  # the PCM is all that is needed from here on
    job = TranscriptionRequest(
        samples=samples, sample_rate=rate,
        # Open WebUI retries without a language after a 400: the virtual model's then applies
        language=(fields.get("language") or "").strip() or virtual.behaviour.language,
        prompt=fields.get("prompt") or None, temperature=temperature,
        behaviour=virtual.behaviour,
    )
    cancel = Cancellation()
    async with app[MANAGER].lease(physical.name) as lease:
        result = await run_to_completion(
            lease.executor,  # the model's own thread
            lambda: lease.backend.infer(lease.model, lease.handle, job, cancel), cancel
        )
    duration = len(samples) / rate
    if fmt == "text":
        return web.Response(text=result.text + "\n", content_type="text/plain")
    if fmt == "srt":
        return web.Response(text=subtitles.srt(result, duration), content_type="text/plain")
    if fmt == "vtt":
        return web.Response(text=subtitles.vtt(result, duration), content_type="text/vtt")
    if fmt == "verbose_json":
        return web.json_response(subtitles.verbose_json(result, duration, job.language))
    return web.json_response({"text": result.text})


def _temperature(value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        temperature = float(value)
    except ValueError:
        temperature = -1.0
    if not 0.0 <= temperature <= 1.0:
        raise InvalidRequest("temperature must be a number between 0 and 1",
                             param="temperature")
    return temperature


@routes.post("/v1/audio/speech")
async def speech(request: web.Request) -> web.Response:
    app = request.app
    body = await read_json(request, app[CONFIG].server.chat_body_limit_mb)
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    virtual = resolve_model(request, body.get("model"), "tts")
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequest("'input' must be a non-empty string", param="input")
    if len(text) > MAX_INPUT_CHARS:
        raise InvalidRequest(f"'input' is longer than {MAX_INPUT_CHARS} characters", param="input")
    fmt = body.get("response_format") or "mp3"
    if fmt not in SPEECH_FORMATS:
        raise InvalidRequest(f"response_format must be one of {', '.join(SPEECH_FORMATS)}",
                             param="response_format")
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0.25 <= speed <= 4:
        raise InvalidRequest("'speed' must be a number between 0.25 and 4", param="speed")
    voice = body.get("voice")
    if voice is not None and not isinstance(voice, str):
        raise InvalidRequest("'voice' must be a string", param="voice")
    if voice in OPENAI_VOICES or not voice:
        voice = virtual.behaviour.voice  # OpenAI names map to the configured default
    language = body.get("language")
    if language is not None and not isinstance(language, str):
        raise InvalidRequest("'language' must be a string such as 'en'", param="language")
    language = language or None  # the client's only: the runtime falls back to the behaviour's
    job = SpeechRequest(text=text, voice=voice, language=language, speed=float(speed),
                        behaviour=virtual.behaviour)
    physical = virtual.physical
    cancel = Cancellation()
    async with app[MANAGER].lease(physical.name) as lease:
        result = await run_to_completion(
            lease.executor,  # the model's own thread
            lambda: lease.backend.infer(lease.model, lease.handle, job, cancel), cancel
        )
    from ..audio.encode import change_speed, content_type, encode_audio

    def finish() -> bytes:
        samples = change_speed(result.samples, result.sample_rate, float(speed))
        return encode_audio(samples, result.sample_rate, fmt)

    audio = await _run(request, finish)
    return web.Response(body=audio, content_type=content_type(fmt))
