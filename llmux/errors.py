"""Errors that carry their HTTP meaning, so a plugin can say "bad request" in one line.

The HTTP layer turns every :class:`LlmuxError` into OpenAI's error JSON
``{"error": {"message", "type", "param", "code"}}`` with :attr:`status`.
"""

from __future__ import annotations


#: The ``code`` an error without one gets, by HTTP status (the middleware's, too).
STATUS_CODES = {400: "bad_request", 401: "invalid_api_key", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 413: "payload_too_large",
                415: "unsupported_media_type"}


class LlmuxError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def to_json(self) -> dict:
        """OpenAI's error JSON; with no code of its own, the one its status has in an HTTP
        error response (so a 400 says ``bad_request`` in a response and mid-stream alike)."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code or STATUS_CODES.get(self.status),
            }
        }


class InvalidRequest(LlmuxError):
    """The client sent something the model cannot take (400)."""

    status = 400
    type = "invalid_request_error"


class AuthenticationFailed(LlmuxError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(LlmuxError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class ModelNotFound(LlmuxError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class PayloadTooLarge(LlmuxError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class UnsupportedMediaType(LlmuxError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class ServiceUnavailable(LlmuxError):
    """Temporarily cannot serve: a backend not installed, the wait queue full, ..."""

    status = 503
    type = "server_error"
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class BackendNotInstalled(ServiceUnavailable):
    code = "backend_not_installed"


class ModelLoadError(LlmuxError):
    """Loading a model failed; nothing stays half-registered and the next request retries."""

    status = 503
    type = "server_error"
    code = "model_load_failed"


class InsufficientVram(LlmuxError):
    """The model can never fit the VRAM budget, whatever is evicted."""

    status = 503
    type = "server_error"
    code = "insufficient_vram"


class ConfigError(Exception):
    """models.yaml or api_keys.yaml is invalid; ``errors`` lists every problem found."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors
