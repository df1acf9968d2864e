"""One upstream model: the pooled ``httpx.Client`` (the handle ``load`` returns), the check
that the upstream serves the model, and one exchange with it that a cancellation aborts."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from llmux import Cancellation, ModelLoadError
from llmux.errors import ServiceUnavailable

from .errors import broken, describe, error_message, status_error, unavailable
from .options import Settings


class Upstream:
    """The handle: what ``infer`` uses and ``unload`` closes."""

    def __init__(self, name: str, settings: Settings, client: httpx.Client | None) -> None:
        self.name = name
        self.settings = settings
        self.client = client
        self.parallel = settings.max_concurrency  # the core's per-model admission (Slot)

    @classmethod
    def open(cls, name: str, s: Settings) -> Upstream:
        if "@" in s.base_url.partition("://")[2].partition("/")[0]:
            raise ModelLoadError(
                f"options.base_url of {name!r} holds credentials (user:password@): remove "
                "them and give the key with api_key_env or api_key_file")
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

    def check_model(self) -> None:
        s, url = self.settings, self.settings.shown_url
        try:
            response = self.client.get("/models")
        except httpx.HTTPError as exc:
            raise ModelLoadError(f"upstream {url} is unreachable: {describe(exc)}") from None
        if response.status_code != 200:
            raise ModelLoadError(
                f"upstream {url}/models answered {response.status_code}: "
                f"{error_message(response)}")
        try:
            ids = [m.get("id") for m in response.json().get("data", [])]
        except (ValueError, AttributeError):
            raise ModelLoadError(f"upstream {url}/models did not return a model list") from None
        if s.model not in ids:
            shown = ", ".join(str(i) for i in ids[:20]) or "none"
            raise ModelLoadError(
                f"upstream {url} does not serve model {s.model!r} (it lists: {shown}); "
                f"set options.model of {self.name!r} to one of them")

    @contextmanager
    def exchange(self, cancel: Cancellation, method: str, path: str,
                 **kwargs: Any) -> Iterator[httpx.Response]:
        """One request whose response (status < 400) the body reads. Failures become llmux
        errors (see errors.py); a cancellation shuts the connection, which interrupts a
        blocked read and makes the upstream stop (vLLM aborts a request whose client left).
        Before the response headers arrive, the wait is bounded by first_byte_timeout_s."""
        url = self.settings.shown_url
        stream = self.client.stream(method, path, **kwargs)
        try:
            response = stream.__enter__()
        except httpx.HTTPError as exc:
            raise unavailable(url, exc) from None
        abort = Abort(response)
        cancel.on_cancel(abort)
        try:
            if response.status_code >= 400:
                response.read()
                raise status_error(response)
            yield response
        except httpx.HTTPError as exc:
            if cancel.cancelled:
                raise Cancelled("the client went away") from None
            if isinstance(exc, httpx.TimeoutException):
                raise unavailable(url, exc) from None
            raise broken(url, exc) from None
        finally:
            abort.finish()
            stream.__exit__(None, None, None)  # closes the response: the upstream stops


class Cancelled(ServiceUnavailable):
    """The exchange ended because the client left; nobody reads it."""


class Abort:
    """Shuts the response's connection when called (from the event loop, on cancellation),
    unless the exchange has finished: then the connection may be back in the pool, serving
    another request."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lock = threading.Lock()
        self.open = True

    def __call__(self) -> None:
        with self.lock:
            if not self.open:
                return
            self.open = False
            stream = self.response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def finish(self) -> None:
        with self.lock:
            self.open = False

