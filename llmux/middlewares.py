"""Error and authentication middlewares.

Every failure leaves as OpenAI's error JSON, never an HTML page or a traceback; every
``/v1/*`` request needs a Bearer key from api_keys.yaml, compared in constant time. An
unexpected error's detail never reaches the client: it gets a generic message with an error
id, and the log has the detail under the same id.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any

from aiohttp import web

from .appstate import API_KEY, CONFIG, METRICS
from .errors import STATUS_CODES, AuthenticationFailed, LlmuxError, ServiceUnavailable

log = logging.getLogger("llmux.http")

# Per-request: the model the client asked for, once a route has resolved it (for the
# internal-error counter).
MODEL: Any = web.RequestKey("model", str) if hasattr(web, "RequestKey") else "llmux.model"

_HTTP_TYPES = {401: "authentication_error", 403: "permission_error"}
_HTTP_CODES = {status: (_HTTP_TYPES.get(status, "invalid_request_error"), code)
               for status, code in STATUS_CODES.items()}


def error_response(status: int, message: str, *, type_: str | None = None,
                   code: str | None = None, param: str | None = None,
                   headers: dict | None = None) -> web.Response:
    default_type, default_code = _HTTP_CODES.get(status, ("server_error", None))
    body = {"error": {"message": message, "type": type_ or default_type,
                      "param": param, "code": code or default_code}}
    return web.json_response(body, status=status, headers=headers)


def internal_error(request: web.Request, exc: BaseException, model: str | None = None,
                   where: str = "request") -> str:
    """Log an unexpected error with a fresh id and count it; return the message the client
    gets, which names the id and nothing of the error itself."""
    error_id = secrets.token_hex(6)
    model = model or request.get(MODEL) or "-"
    log.error("internal error %s in the %s for %s (%s %s): %s: %s", error_id, where, model,
              request.method, request.path, type(exc).__name__, exc, exc_info=exc)
    metrics = request.app.get(METRICS)
    if metrics is not None:
        metrics.internal_error(model)
    return f"internal error (id {error_id})"


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except LlmuxError as exc:
        headers = {}
        if isinstance(exc, ServiceUnavailable) and exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        if isinstance(exc, AuthenticationFailed):
            headers["WWW-Authenticate"] = 'Bearer realm="llmux"'
        if exc.status >= 500:
            log.warning("%s %s -> %d: %s", request.method, request.path, exc.status, exc.message)
        return error_response(exc.status, exc.message, type_=exc.type, code=exc.code,
                              param=exc.param, headers=headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text if exc.text and not exc.text.startswith("<") else exc.reason
        if exc.status == 404:
            message = f"no route for {request.method} {request.path}"
        elif exc.status == 405:
            message = f"method {request.method} is not allowed on {request.path}"
        elif exc.status == 413:
            message = "request body too large"
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return error_response(exc.status, message, headers=headers)
    except (ConnectionResetError, OSError) as exc:
        if request.transport is None or request.transport.is_closing():
            raise  # the client left; nothing to answer
        return error_response(500, internal_error(request, exc), code="internal_error")
    except Exception as exc:
        return error_response(500, internal_error(request, exc), code="internal_error")


def _needs_auth(request: web.Request) -> bool:
    path = request.path
    if path.startswith("/v1/") or path == "/v1":
        return True
    if path == "/metrics":
        return request.app[CONFIG].server.metrics_require_auth
    return False


@web.middleware
async def auth_middleware(request: web.Request, handler):
    if not _needs_auth(request):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed(
            "missing API key: send 'Authorization: Bearer <key>' with a key from api_keys.yaml"
        )
    presented = token.encode()
    match = None
    for key in request.app[CONFIG].keys:
        # Compare against every key, so timing does not reveal which prefix matched.
        if hmac.compare_digest(presented, key.key.encode()):
            match = key
    if match is None:
        raise AuthenticationFailed("invalid API key")
    request[API_KEY] = match
    return await handler(request)
