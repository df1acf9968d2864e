"""What an upstream's failure becomes for llmux's client: OpenAI errors with the right status.

| upstream                                   | client                                        |
|--------------------------------------------|-----------------------------------------------|
| 400, 422 and other 4xx not below            | 400 with the upstream's message               |
| 413                                         | 413                                           |
| 401, 403, 404 (llmux's key or model wrong)  | 503 ``upstream_misconfigured``                |
| 429, 5xx                                    | 503 ``upstream_unavailable``, its Retry-After |
| unreachable, connect or read timeout        | 503 ``upstream_unavailable``                  |
| dies mid-answer, a broken answer            | 502 ``upstream_error``                        |

Every 502/503 carries ``Retry-After``. No message ever holds a request's headers (the key).
"""

from __future__ import annotations

from typing import Any

import httpx

from llmux import InvalidRequest, LlmuxError
from llmux.errors import PayloadTooLarge, ServiceUnavailable

#: Retry-After for a 5xx or an unreachable upstream that sent none of its own.
RETRY_AFTER_S = 5.0


class UpstreamFailed(ServiceUnavailable):
    """The upstream answered, then broke: it died mid-stream, or sent what is not an answer
    (a 502, Bad Gateway; a ServiceUnavailable subclass, so it carries Retry-After too)."""

    status = 502
    code = "upstream_error"


def describe(exc: httpx.HTTPError) -> str:
    """What went wrong, never the request (its headers hold the key)."""
    kinds = ((httpx.ConnectTimeout, "connect timeout"),
             (httpx.ReadTimeout, "no answer within first_byte_timeout_s (read timeout)"),
             (httpx.WriteTimeout, "write timeout"), (httpx.PoolTimeout, "pool timeout"),
             (httpx.ConnectError, "connection failed"),
             (httpx.RemoteProtocolError, "the connection closed before the answer ended"),
             (httpx.ReadError, "the connection broke"))
    for kind, text in kinds:
        if isinstance(exc, kind):
            return text
    return type(exc).__name__


def unavailable(where: str, exc: httpx.HTTPError) -> ServiceUnavailable:
    """The request never got an answer: connecting or waiting for headers failed."""
    return ServiceUnavailable(f"upstream {where} unavailable: {describe(exc)}",
                              retry_after=RETRY_AFTER_S, code="upstream_unavailable")


def broken(where: str, exc: httpx.HTTPError | None = None, detail: str = "") -> UpstreamFailed:
    """The upstream's answer began and broke off (or was not an answer)."""
    what = describe(exc) if exc is not None else detail
    return UpstreamFailed(f"upstream {where} failed mid-answer: {what}",
                          retry_after=RETRY_AFTER_S)


def message_of(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or error.get("detail") or error)[:1000]
        return str(error)[:1000]
    return str(body)[:1000]


def error_message(response: httpx.Response) -> str:
    try:
        return message_of(response.json())
    except ValueError:
        return response.text[:1000] or response.reason_phrase


def status_error(response: httpx.Response) -> LlmuxError:
    """An upstream's error status (its body already read) as the client's error."""
    status, message = response.status_code, error_message(response)
    if status >= 500 or status == 429:
        retry = response.headers.get("Retry-After")
        try:
            retry_after = float(retry) if retry else RETRY_AFTER_S
        except ValueError:
            retry_after = RETRY_AFTER_S
        return ServiceUnavailable(f"upstream answered {status}: {message}",
                                  retry_after=retry_after, code="upstream_unavailable")
    if status in (401, 403, 404):
        # llmux's own key or options.model is wrong: the operator's problem, not the client's.
        return ServiceUnavailable(f"upstream rejected the request ({status}): {message}",
                                  retry_after=RETRY_AFTER_S, code="upstream_misconfigured")
    if status == 413:
        return PayloadTooLarge(f"upstream: {message}")
    return InvalidRequest(f"upstream: {message}")


def stream_error(where: str, chunk: dict) -> LlmuxError:
    """An ``{"error": ...}`` event inside the upstream's stream (after a 200)."""
    error = chunk.get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    if kind == "invalid_request_error":
        return InvalidRequest(f"upstream: {message_of(chunk)}")
    return broken(where, detail=message_of(chunk))
