"""Typed keys for what the aiohttp application holds (no string keys, no globals)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .config import ApiKey, Config
    from .runtime import Runtimes

CONFIG: web.AppKey["Config"] = web.AppKey("config")
RUNTIMES: web.AppKey["Runtimes"] = web.AppKey("runtimes")
CHAT_FORMATS: web.AppKey[Any] = web.AppKey("chat_formats")  # llmux.chatformats.ChatFormats
MANAGER: web.AppKey[Any] = web.AppKey("manager")  # llmux.scheduler.ModelManager
METRICS: web.AppKey[Any] = web.AppKey("metrics")  # llmux.metrics.Metrics
EXECUTOR: web.AppKey[Any] = web.AppKey("executor")  # threads that run model work

# Per-request: the authenticated key (set by the auth middleware).
API_KEY: Any = web.RequestKey("api_key", object) if hasattr(web, "RequestKey") else "llmux.api_key"


def api_key_of(request: web.Request) -> "ApiKey | None":
    return request.get(API_KEY)
