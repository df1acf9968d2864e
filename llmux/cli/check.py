"""``llmux check-config``: validate a config directory and show what it serves."""

from __future__ import annotations

import argparse
import sys


def register(sub) -> None:
    p = sub.add_parser(
        "check-config", help="validate models.yaml and api_keys.yaml",
        description="Load the configuration exactly as `serve` does and report every error.",
    )
    p.add_argument("directory", nargs="?", metavar="DIR",
                   help="config directory (default: $LLMUX_CONFIG_DIR, then ./config)")
    p.add_argument("--schema-only", action="store_true",
                   help="check the files only, not the installed backends (no runtimes needed)")
    p.set_defaults(func=run)


def _estimate(runtimes, model) -> tuple[float | None, str]:
    try:
        value = runtimes.get(model.backend).estimate_vram(model)
    except Exception as exc:  # files missing on this machine, unreadable header, ...
        return None, f"n/a ({str(exc).splitlines()[0][:60]})"
    if value is None:
        return None, "n/a"
    return value, f"{value:.1f}"


def run(args: argparse.Namespace) -> int:
    from ..config import load_config, resolve_config_dir
    from ..errors import ConfigError
    from ..plugins import get_plugin_manager
    from ..runtime import Runtimes

    directory = resolve_config_dir(args.directory)
    runtimes = None if args.schema_only else Runtimes(get_plugin_manager())
    try:
        config = load_config(directory, runtimes)
    except ConfigError as exc:
        print(f"{directory}: {len(exc.errors)} error(s)", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return 1

    print(f"{directory}: OK — {len(config.virtual)} virtual models on "
          f"{len(config.physical)} physical models")
    budget = config.budget_gb
    usable = None if budget is None else budget - config.reserve_gb
    print(f"models_dir: {config.models_dir}; VRAM budget: "
          + (f"{budget:g} GB, {usable:g} GB usable" if budget else "from the GPU at start"))
    print()
    width = max(len(v) for v in config.virtual)
    pwidth = max(len(p) for p in config.physical)
    print(f"{'virtual':<{width}}    {'physical':<{pwidth}}    {'backend':<12} {'type':<4}")
    for v in config.virtual.values():
        p = v.physical
        print(f"{v.name:<{width}} -> {p.name:<{pwidth}} -> {p.backend:<12} {p.type:<4}")
    print()
    print(f"{'physical':<{pwidth}}  {'configured GB':>13}  estimated GB")
    too_big = []
    for p in config.physical.values():
        estimate, shown = (None, "n/a (--schema-only)") if runtimes is None else _estimate(runtimes, p)
        print(f"{p.name:<{pwidth}}  {p.vram_gb:>13.1f}  {shown}")
        if usable is not None and estimate is not None and estimate > usable:
            too_big.append(f"{p.name}: estimated {estimate:.1f} GB exceeds the usable "
                           f"{usable:g} GB budget")
    if too_big:
        print(file=sys.stderr)
        for line in too_big:
            print(f"error: {line}", file=sys.stderr)
        return 1
    return 0
