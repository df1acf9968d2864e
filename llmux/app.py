"""The aiohttp application factory and the server runner."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import pluggy
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .appstate import API_KEY, CHAT_FORMATS, CONFIG, EXECUTOR, MANAGER, METRICS, RUNTIMES
from .config import Config
from .middlewares import auth_middleware, error_middleware
from .plugins import get_plugin_manager
from .runtime import Runtimes

log = logging.getLogger("llmux")


def _chat_formats(pm: pluggy.PluginManager):
    from .chatformats import ChatFormats

    return ChatFormats.from_plugin_manager(pm)


def create_app(
    config: Config,
    pm: pluggy.PluginManager | None = None,
    *,
    runtimes: Runtimes | None = None,
    gpu=None,
) -> web.Application:
    """Build the application. Nothing is loaded until ``on_startup`` runs."""
    from .metrics import Metrics
    from .routes import admin, audio, bench, chat, metrics, models, openapi
    from .scheduler import ModelManager

    pm = pm or get_plugin_manager()
    runtimes = runtimes or Runtimes(pm)
    limit = max(config.server.chat_body_limit_mb, config.server.audio_body_limit_mb)
    app = web.Application(
        middlewares=[error_middleware, auth_middleware],
        client_max_size=int(limit * 1024 * 1024) + 1024 * 1024,
    )
    app[CONFIG] = config
    app[RUNTIMES] = runtimes
    app[CHAT_FORMATS] = _chat_formats(pm)
    app[METRICS] = Metrics()
    app[MANAGER] = ModelManager(
        runtimes,
        config.physical,
        budget_gb=config.budget_gb,
        reserve_gb=config.reserve_gb,
        max_waiting=config.server.max_waiting,
        metrics=app[METRICS],
        gpu=gpu,
        drain_timeout_s=config.server.shutdown_grace_s,
    )
    for module in (models, chat, audio, admin, bench, metrics, openapi):
        app.router.add_routes(module.routes)
    app.cleanup_ctx.append(_lifecycle)
    return app


async def _lifecycle(app: web.Application):
    config = app[CONFIG]
    # Short work outside any lease (decoding and encoding audio, the benchmark route's
    # bookkeeping). Model work runs in each loaded model's own threads (Slot.executor).
    executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="llmux-work")
    app[EXECUTOR] = executor
    manager = app[MANAGER]
    await manager.start(preload=config.server.preload)
    log.info(
        "llmux ready: %d virtual models on %d physical models, backends: %s",
        len(config.virtual), len(config.physical), ", ".join(app[RUNTIMES].names) or "none",
    )
    try:
        yield
    finally:
        await manager.close()
        executor.shutdown(wait=False, cancel_futures=True)


class AccessLogger(AbstractAccessLogger):
    """One line per request, naming the API key's owner (never the key)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        key = request.get(API_KEY)
        who = key.name if key is not None else "-"
        self.logger.info(
            '%s %s "%s %s" %d %.3fs',
            request.remote, who, request.method, request.path_qs, response.status, time,
        )


def run(config: Config, host: str, port: int, pm: pluggy.PluginManager | None = None) -> None:
    app = create_app(config, pm)
    web.run_app(
        app,
        host=host,
        port=port,
        access_log_class=AccessLogger,
        print=lambda message: log.info(message.strip()),
        handler_cancellation=True,
        shutdown_timeout=10,
    )

