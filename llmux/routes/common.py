"""What every model route does first: read the body within its limit, find the model."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..appstate import CONFIG, RUNTIMES
from ..errors import InvalidRequest, ModelNotFound, PayloadTooLarge, UnsupportedMediaType
from ..runtime import install_hint
from ..errors import BackendNotInstalled
from ..types import VirtualModel

MB = 1024 * 1024

ROUTE_FOR_TYPE = {
    "llm": "/v1/chat/completions",
    "asr": "/v1/audio/transcriptions",
    "tts": "/v1/audio/speech",
}


async def read_body(request: web.Request, limit_mb: float) -> bytes:
    """Read the body, failing with 413 as soon as it exceeds ``limit_mb``."""
    limit = int(limit_mb * MB)
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(
            f"request body of {request.content_length} bytes exceeds the limit of "
            f"{limit_mb:g} MB for {request.path}"
        )
    chunks, size = [], 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit_mb:g} MB for {request.path}")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: web.Request, limit_mb: float) -> Any:
    # Lenient like OpenAI: curl's default form content type still carries JSON. A multipart
    # form, though, is certainly not a JSON body.
    if request.content_type.startswith("multipart/"):
        raise UnsupportedMediaType(
            f"expected a JSON body (application/json), got {request.content_type}"
        )
    raw = await read_body(request, limit_mb)
    if not raw:
        raise InvalidRequest("the request body is empty; send a JSON object")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None


def resolve_model(request: web.Request, name: Any, expected_type: str) -> VirtualModel:
    """The virtual model ``name``, checked to be of ``expected_type`` and installed."""
    if not isinstance(name, str) or not name:
        raise InvalidRequest("'model' is required: one of the ids from GET /v1/models",
                             param="model")
    config = request.app[CONFIG]
    virtual = config.virtual.get(name)
    if virtual is None:
        raise ModelNotFound(
            f"the model {name!r} does not exist; GET /v1/models lists the available ones",
            param="model",
        )
    if virtual.type != expected_type:
        raise InvalidRequest(
            f"{name!r} is a {virtual.type} model: use it with {ROUTE_FOR_TYPE[virtual.type]}, "
            f"not {request.path}",
            param="model",
        )
    runtimes = request.app[RUNTIMES]
    if not runtimes.has(virtual.physical.backend):
        raise BackendNotInstalled(
            f"model {name!r} cannot be served: "
            + install_hint(virtual.physical.backend, runtimes.names)
        )
    return virtual
