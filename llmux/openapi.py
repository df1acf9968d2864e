"""The OpenAPI 3.1 description of llmux's routes, served at ``GET /openapi.json``.

Hand-written and small: the main request fields with their types and ranges, and the one
error shape every 4xx and 5xx has. ``tests/test_openapi.py`` checks that it names every
route the app registers.
"""

from __future__ import annotations

import copy

_ERROR = {"$ref": "#/components/schemas/Error"}
_BEARER = [{"bearer": []}]


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict:
    reasons = {400: "Invalid request", 401: "Missing or invalid API key",
               403: "The key is not an admin key", 404: "No such model",
               413: "Body over the limit", 415: "Wrong content type",
               503: "Backend not installed, load failed or the wait queue is full"}
    return {str(s): {"description": reasons[s], **_json(_ERROR)} for s in statuses}


def _op(summary: str, ok: dict, *errors: int, body: dict | None = None,
        auth: bool = True, params: list | None = None) -> dict:
    op: dict = {"summary": summary, "responses": {"200": ok, **_errors(*errors)}}
    if body is not None:
        op["requestBody"] = {"required": True, **body}
    if params:
        op["parameters"] = params
    op["security"] = _BEARER if auth else []
    return op


def _name(description: str) -> list:
    return [{"name": "name", "in": "path", "required": True, "description": description,
             "schema": {"type": "string"}}]


_NUMBER = {"type": "number"}
_STRING = {"type": "string"}
_CONTENT_PART = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"enum": ["text", "image_url", "input_audio", "refusal"]},
        "text": _STRING,
        "image_url": {"oneOf": [_STRING, {"type": "object", "required": ["url"],
                                          "properties": {"url": _STRING}}]},
    },
}
_MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"enum": ["system", "developer", "user", "assistant", "tool", "function"]},
        "content": {"oneOf": [_STRING, {"type": "null"},
                              {"type": "array", "items": _CONTENT_PART}]},
        "name": _STRING,
        "tool_call_id": _STRING,
        "tool_calls": {"type": "array", "items": {"type": "object"}},
    },
}
_TOOL = {
    "type": "object",
    "required": ["type", "function"],
    "properties": {
        "type": {"const": "function"},
        "function": {"type": "object", "required": ["name"], "properties": {
            "name": _STRING, "description": _STRING, "parameters": {"type": "object"}}},
    },
}
CHAT_REQUEST = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": _STRING,
        "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
        "stream": {"type": "boolean"},
        "stream_options": {"type": "object", "properties": {
            "include_usage": {"type": "boolean"}}},
        "temperature": {**_NUMBER, "minimum": 0, "maximum": 2},
        "top_p": {**_NUMBER, "minimum": 0, "maximum": 1},
        "max_tokens": {"type": "integer", "minimum": 1},
        "max_completion_tokens": {"type": "integer", "minimum": 1},
        "n": {"const": 1},
        "seed": {"type": "integer"},
        "stop": {"oneOf": [_STRING, {"type": "array", "items": _STRING, "maxItems": 4}]},
        "presence_penalty": {**_NUMBER, "minimum": -2, "maximum": 2},
        "frequency_penalty": {**_NUMBER, "minimum": -2, "maximum": 2},
        "tools": {"type": "array", "items": _TOOL},
        "tool_choice": {"oneOf": [
            {"enum": ["auto", "none", "required"]},
            {"type": "object", "required": ["function"], "properties": {
                "type": {"const": "function"},
                "function": {"type": "object", "properties": {"name": _STRING}}}},
        ]},
    },
}
SPEECH_REQUEST = {
    "type": "object",
    "required": ["model", "input"],
    "properties": {
        "model": _STRING,
        "input": {**_STRING, "minLength": 1, "maxLength": 4096},
        "voice": _STRING,
        "language": _STRING,
        "response_format": {"enum": ["mp3", "opus", "aac", "flac", "wav", "pcm"]},
        "speed": {**_NUMBER, "minimum": 0.25, "maximum": 4},
    },
}
TRANSCRIPTION_FORM = {
    "type": "object",
    "required": ["model", "file"],
    "properties": {
        "model": _STRING,
        "file": {**_STRING, "contentMediaType": "application/octet-stream"},
        "language": _STRING,
        "prompt": _STRING,
        "response_format": {"enum": ["json", "text", "verbose_json", "srt", "vtt"]},
        "temperature": {**_NUMBER, "minimum": 0, "maximum": 1},
        "stream": {"enum": ["false"]},
    },
}
BENCH_REQUEST = {
    "type": "object",
    "required": ["model"],
    "properties": {
        "model": _STRING,
        "device": {"enum": ["cpu", "cuda", "both"]},
        "runs": {"type": "integer", "minimum": 1, "maximum": 20},
        "max_tokens": {"type": "integer", "minimum": 1, "maximum": 4096},
    },
}
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["message", "type", "param", "code"],
        "properties": {"message": _STRING, "type": _STRING,
                       "param": {"type": ["string", "null"]},
                       "code": {"type": ["string", "null"]}},
    }},
}

_OBJECT = _json({"type": "object"})
_MODEL_ERRORS = (400, 401, 404, 413, 415, 503)


def document() -> dict:
    """A fresh copy of the description (callers may change it)."""
    return copy.deepcopy({
        "openapi": "3.1.0",
        "info": {"title": "llmux", "version": "0.1.0",
                 "description": "One process, one small GPU, many models behind one "
                                "OpenAI-compatible API."},
        "paths": {
            "/v1/chat/completions": {"post": _op(
                "Chat completion; with stream=true a text/event-stream of chunks",
                {"description": "A chat.completion, or SSE chunks ending in [DONE]",
                 "content": {"application/json": {"schema": {"type": "object"}},
                             "text/event-stream": {"schema": _STRING}}},
                *_MODEL_ERRORS, body=_json({"$ref": "#/components/schemas/ChatRequest"}))},
            "/v1/audio/transcriptions": {"post": _op(
                "Transcribe an uploaded audio file",
                {"description": "The transcript in the response_format asked for",
                 "content": {"application/json": {"schema": {"type": "object"}},
                             "text/plain": {"schema": _STRING},
                             "text/vtt": {"schema": _STRING}}},
                *_MODEL_ERRORS, body={"content": {"multipart/form-data": {
                    "schema": {"$ref": "#/components/schemas/TranscriptionForm"}}}})},
            "/v1/audio/speech": {"post": _op(
                "Synthesize speech",
                {"description": "Audio in the response_format asked for",
                 "content": {"audio/*": {"schema": {**_STRING, "format": "binary"}}}},
                *_MODEL_ERRORS, body=_json({"$ref": "#/components/schemas/SpeechRequest"}))},
            "/v1/models": {"get": _op(
                "Every virtual model, loaded or not", _OBJECT | {"description": "A list"}, 401)},
            "/v1/models/{name}": {"get": _op(
                "One virtual model", _OBJECT | {"description": "The model"}, 401, 404,
                params=_name("a virtual model id"))},
            "/v1/admin/models": {"get": _op(
                "What is loaded (admin keys only)", _OBJECT | {"description": "The state"},
                401, 403)},
            "/v1/admin/models/{name}/load": {"post": _op(
                "Load a model now (admin keys only)", _OBJECT | {"description": "Loaded"},
                401, 403, 404, 503, params=_name("a physical or virtual model name"))},
            "/v1/admin/models/{name}/unload": {"post": _op(
                "Unload a model now (admin keys only)", _OBJECT | {"description": "Unloaded"},
                401, 403, 404, params=_name("a physical or virtual model name"))},
            "/v1/admin/bench": {"post": _op(
                "Benchmark a model in the server process (admin keys only)",
                _OBJECT | {"description": "The measurements"}, 400, 401, 403, 404, 413, 415,
                body=_json({"$ref": "#/components/schemas/BenchRequest"}))},
            "/health": {"get": _op(
                "Liveness and what is loaded", _OBJECT | {"description": "status ok"},
                auth=False)},
            "/metrics": {"get": _op(
                "Prometheus metrics (a key only with server.metrics_require_auth)",
                {"description": "Prometheus text format",
                 "content": {"text/plain": {"schema": _STRING}}}, 401, auth=False)},
            "/openapi.json": {"get": _op(
                "This description", _OBJECT | {"description": "OpenAPI 3.1"}, auth=False)},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "A key from api_keys.yaml"}},
            "schemas": {"ChatRequest": CHAT_REQUEST, "SpeechRequest": SPEECH_REQUEST,
                        "TranscriptionForm": TRANSCRIPTION_FORM,
                        "BenchRequest": BENCH_REQUEST, "Error": ERROR},
        },
    })
