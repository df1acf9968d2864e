"""``llmux serve``: load the configuration exactly as check-config does, then serve."""

from __future__ import annotations

import argparse
import logging
import os

log = logging.getLogger("llmux")


def register(sub) -> None:
    p = sub.add_parser("serve", help="start the OpenAI-compatible server",
                       description="Start the server. Models load on first use (or preload).")
    p.add_argument("--config", metavar="DIR",
                   help="config directory (default: $LLMUX_CONFIG_DIR, then ./config)")
    p.add_argument("--host", help="listen address (default: from models.yaml, else 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default: from models.yaml, else 8081)")
    p.set_defaults(func=run)


EXIT_CONFIG = 78  # sysexits EX_CONFIG: systemd's RestartPreventExitStatus does not retry it


def placeholder_keys(config) -> list[str]:
    """The names of keys still set to the shipped examples (``replace-me…``)."""
    return [k.name for k in config.keys if k.key.lower().startswith(PLACEHOLDER_PREFIX)]


PLACEHOLDER_PREFIX = "replace-me"


def run(args: argparse.Namespace) -> int:
    from ..config import load_config, resolve_config_dir
    from ..errors import ConfigError
    from ..plugins import get_plugin_manager
    from ..runtime import Runtimes

    directory = resolve_config_dir(args.config)
    pm = get_plugin_manager()
    runtimes = Runtimes(pm)
    missing: list[str] = []
    try:
        config = load_config(directory, runtimes, missing_backends=missing)
    except ConfigError as exc:
        log.error("invalid configuration in %s:", directory)
        for line in exc.errors:
            log.error("  %s", line)
        log.error("run `llmux check-config %s` after fixing it", directory)
        return EXIT_CONFIG
    placeholders = placeholder_keys(config)
    if placeholders:
        log.error("api_keys.yaml in %s still holds the example keys of %s: refusing to serve "
                  "with keys anyone can read. Generate real ones with `llmux keys add NAME "
                  "--config %s` (and remove the examples with `llmux keys remove NAME`)",
                  directory, ", ".join(placeholders), directory)
        return EXIT_CONFIG
    for line in missing:
        log.warning("%s; its models are listed but answer 503 until it is installed", line)
    from ..app import run as run_app

    host = args.host or config.server.host
    port = args.port or config.server.port
    log.info("config %s, models in %s, listening on http://%s:%d", directory,
             config.models_dir, host, port)
    run_app(config, host, port, pm)
    return 0
