"""What every model route does first: read the body within its limit, find the model."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from ..appstate import CONFIG, RUNTIMES
from ..errors import (
    BackendNotInstalled,
    InvalidRequest,
    ModelNotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from ..runtime import install_hint
from ..types import VirtualModel

MB = 1024 * 1024
#: Deepest nesting of arrays and objects a JSON body may have (tool schemas need ~10).
MAX_JSON_DEPTH = 64
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # only a lone one is left after json.loads
# Where one can come from: a \\ud800-\\udfff escape, or those code points as UTF-8-like
# bytes (json.loads decodes with surrogatepass); a UTF-16/32 body is always walked.
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")

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
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, 4300+ digit ints
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise _too_deep() from None
    check_json(body, raw)
    return body


def _too_deep() -> InvalidRequest:
    return InvalidRequest(f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep")


def check_json(body: Any, raw: bytes | None = None) -> None:
    """Refuse nesting deeper than :data:`MAX_JSON_DEPTH` and strings holding a lone UTF-16
    surrogate (not text: it cannot be encoded to UTF-8). ``raw``, the bytes ``body`` was
    parsed from, spares the walk over every string when no surrogate can be there."""
    level, depth = [body], 0
    while level:
        level = [v for c in level if isinstance(c, (dict, list))
                 for v in (c.values() if isinstance(c, dict) else c)
                 if isinstance(v, (dict, list))]
        depth += 1
        if level and depth >= MAX_JSON_DEPTH:
            raise _too_deep()
    if raw is None or b"\0" in raw[:4] or _MAYBE_SURROGATE.search(raw):
        _check_text(body)


def _check_text(body: Any) -> None:
    """A string (value or key) holding a lone surrogate is a 400 naming its field."""
    stack = [(body, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise InvalidRequest(f"{path or 'the body'} holds a lone UTF-16 surrogate, "
                                     "which is not valid Unicode text", param=path or None)
        elif isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else key
                stack += ((key, where), (item, where))
        elif isinstance(value, list):
            stack += ((item, f"{path}[{i}]") for i, item in enumerate(value))


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
