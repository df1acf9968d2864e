"""``llmux serve``: load the configuration exactly as check-config does, then serve."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("llmux")


def register(sub) -> None:
    p = sub.add_parser("serve", help="start the OpenAI-compatible server",
                       description="Start the server. Models load on first use (or preload).")
    p.add_argument("--config", metavar="DIR",
                   help="config directory (default: $LLMUX_CONFIG_DIR, then ./config)")
    p.add_argument("--host", help="listen address (default: from models.yaml, else 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default: from models.yaml, else 8081)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import load_config, resolve_config_dir
    from ..errors import ConfigError
    from ..plugins import get_plugin_manager
    from ..runtime import Runtimes

    directory = resolve_config_dir(args.config)
    pm = get_plugin_manager()
    runtimes = Runtimes(pm)
    try:
        config = load_config(directory, runtimes)
    except ConfigError as exc:
        log.error("invalid configuration in %s:", directory)
        for line in exc.errors:
            log.error("  %s", line)
        log.error("run `llmux check-config %s` after fixing it", directory)
        return 1
    from ..app import run as run_app

    host = args.host or config.server.host
    port = args.port or config.server.port
    log.info("config %s, models in %s, listening on http://%s:%d", directory,
             config.models_dir, host, port)
    run_app(config, host, port, pm)
    return 0
