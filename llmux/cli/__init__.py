"""The ``llmux`` command: serve, check-config, and the subcommands of other modules.

Importing this module is cheap: aiohttp, the plugins and every runtime library are imported
only by the subcommand that needs them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Subcommand modules; each exposes register(subparsers).
SUBCOMMANDS = ("llmux.cli.serve", "llmux.cli.check", "llmux.cli.keys", "llmux.cli.sources",
               "llmux.cli.bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmux",
        description="Serve many AI models from one small GPU behind an OpenAI-compatible API.",
    )
    parser.add_argument("--log-level", default=os.environ.get("LLMUX_LOG_LEVEL", "INFO"),
                        help="DEBUG, INFO, WARNING or ERROR (default: INFO)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(args.log_level)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
