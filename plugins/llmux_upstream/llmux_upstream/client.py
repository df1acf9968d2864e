"""One upstream model: a pooled ``httpx.Client``, the request it sends, the SSE it reads."""

from __future__ import annotations

import json
import logging
from typing import Any, Iterator

import httpx

from llmux import (
    Cancellation,
    ChatRequest,
    ContentDelta,
    Finish,
    InvalidRequest,
    LlmuxError,
    ModelLoadError,
    ReasoningDelta,
    ToolCallDelta,
    Usage,
)
from llmux.chatformats.messages import apply_prefix
from llmux.errors import PayloadTooLarge, ServiceUnavailable

from .options import Settings

log = logging.getLogger("llmux.upstream")

#: Retry-After for a 5xx or an unreachable upstream that sent none of its own.
RETRY_AFTER_S = 5.0


class Upstream:
    """The handle: what ``infer`` uses and ``unload`` closes."""

    def __init__(self, name: str, settings: Settings, client: httpx.Client) -> None:
        self.name = name
        self.settings = settings
        self.client = client
        self.parallel = settings.max_concurrency  # the core's per-model admission (Slot)

    @classmethod
    def open(cls, name: str, s: Settings) -> "Upstream":
        headers = {"Accept": "application/json"}
        key = s.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        timeout = httpx.Timeout(connect=s.connect_timeout_s, read=s.first_byte_timeout_s,
                                write=s.first_byte_timeout_s, pool=s.connect_timeout_s)
        limits = httpx.Limits(max_connections=s.max_concurrency + 1,
                              max_keepalive_connections=s.max_concurrency + 1)
        client = httpx.Client(base_url=s.base_url, headers=headers, timeout=timeout,
                              limits=limits, verify=s.verify_tls)
        handle = cls(name, s, client)
        try:
            handle.check_model()
        except BaseException:
            client.close()
            raise
        return handle

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ load check

    def check_model(self) -> None:
        s = self.settings
        try:
            response = self.client.get("/models")
        except httpx.HTTPError as exc:
            raise ModelLoadError(
                f"upstream {s.base_url} is unreachable: {describe(exc)}") from None
        if response.status_code != 200:
            raise ModelLoadError(
                f"upstream {s.base_url}/models answered {response.status_code}: "
                f"{error_message(response)}")
        try:
            ids = [m.get("id") for m in response.json().get("data", [])]
        except (ValueError, AttributeError):
            raise ModelLoadError(f"upstream {s.base_url}/models did not return a model list")
        if s.model not in ids:
            shown = ", ".join(str(i) for i in ids[:20]) or "none"
            raise ModelLoadError(
                f"upstream {s.base_url} does not serve model {s.model!r} (it lists: {shown}); "
                f"set options.model of {self.name!r} to one of them")

    # ------------------------------------------------------------------ chat

    def body(self, request: ChatRequest) -> dict[str, Any]:
        s = self.settings
        behaviour = request.behaviour
        messages = apply_prefix([dict(m) for m in request.messages],
                                behaviour.system_prompt_prefix)
        body: dict[str, Any] = dict(s.extra_body)
        body.update(model=s.model, messages=messages, stream=True,
                    stream_options={"include_usage": True})
        if request.tools:
            body["tools"] = list(request.tools)
        if request.tool_choice is not None:
            body["tool_choice"] = request.tool_choice
        sp = request.sampling
        for name in ("temperature", "top_p", "max_tokens", "seed", "presence_penalty",
                     "frequency_penalty"):
            value = getattr(sp, name)
            if value is not None:
                body[name] = value
        if sp.stop:
            body["stop"] = list(sp.stop)
        if behaviour.reasoning_effort:
            body["reasoning_effort"] = behaviour.reasoning_effort
        if behaviour.thinking is not None:
            kwargs = dict(body.get("chat_template_kwargs") or {})
            kwargs["enable_thinking"] = behaviour.thinking
            body["chat_template_kwargs"] = kwargs
        return body

    def chat(self, request: ChatRequest, cancel: Cancellation) -> Iterator:
        s = self.settings
        try:
            stream = self.client.stream("POST", "/chat/completions", json=self.body(request))
            response = stream.__enter__()
        except httpx.HTTPError as exc:
            raise unavailable(s, exc) from None
        try:
            if response.status_code >= 400:
                response.read()
                raise status_error(s, response)
            yield from events(response, cancel, s)
        except httpx.HTTPError as exc:
            if not cancel.cancelled:
                raise unavailable(s, exc) from None
        finally:
            stream.__exit__(None, None, None)  # closes the response: the upstream stops


def events(response: httpx.Response, cancel: Cancellation, s: Settings) -> Iterator:
    """The upstream's SSE chunks as llmux chat events."""
    finish: str | None = None
    usage: Usage | None = None
    for line in response.iter_lines():
        if cancel.cancelled:
            yield Finish("cancelled")
            return
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        try:
            chunk = json.loads(data)
        except ValueError:
            log.warning("upstream %s sent an unreadable chunk; skipped", s.base_url)
            continue
        if not isinstance(chunk, dict):
            continue
        if "error" in chunk:
            raise LlmuxError(f"upstream error: {message_of(chunk)}", code="upstream_error")
        if chunk.get("usage"):
            u = chunk["usage"]
            usage = Usage(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content")
            if reasoning is None:
                reasoning = delta.get("reasoning")
            if reasoning:
                yield ReasoningDelta(reasoning)
            if delta.get("content"):
                yield ContentDelta(delta["content"])
            for call in delta.get("tool_calls") or ():
                function = call.get("function") or {}
                yield ToolCallDelta(int(call.get("index", 0)), id=call.get("id"),
                                    name=function.get("name"),
                                    arguments=function.get("arguments") or "")
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    if cancel.cancelled:
        yield Finish("cancelled")
        return
    yield Finish(finish or "stop")
    if usage is not None:
        yield Usage(usage.prompt_tokens, usage.completion_tokens)


# --------------------------------------------------------------------------- errors


def describe(exc: httpx.HTTPError) -> str:
    kind = {httpx.ConnectTimeout: "connect timeout", httpx.ReadTimeout: "read timeout",
            httpx.ConnectError: "connection failed"}.get(type(exc), type(exc).__name__)
    return kind  # never the request (its headers hold the key)


def unavailable(s: Settings, exc: httpx.HTTPError) -> ServiceUnavailable:
    return ServiceUnavailable(f"upstream {s.base_url} unavailable: {describe(exc)}",
                              retry_after=RETRY_AFTER_S, code="upstream_unavailable")


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


def status_error(s: Settings, response: httpx.Response) -> LlmuxError:
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
