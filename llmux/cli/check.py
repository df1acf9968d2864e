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
          + (f"{budget:g} GiB, {usable:g} GiB usable (reserve {config.reserve_gb:g})"
             if budget else "from the GPU at start"))
    print()
    width = max(len(v) for v in config.virtual)
    pwidth = max(len(p) for p in config.physical)
    print(f"{'virtual':<{width}}    {'physical':<{pwidth}}    {'backend':<12} {'type':<4}")
    for v in config.virtual.values():
        p = v.physical
        print(f"{v.name:<{width}} -> {p.name:<{pwidth}} -> {p.backend:<12} {p.type:<4}")
    print()
    if runtimes is None:
        print("sizes: not checked (--schema-only)")
        return 0
    _sizes(config, runtimes, usable, pwidth)
    return 0


def _sizes(config, runtimes, usable, pwidth) -> None:
    """Each model's true size at its fitted context, its problems, and co-residency."""
    from ..residency import describe, residency
    from ..sizing import fit_model

    fits = {p.name: fit_model(runtimes.get(p.backend), p, usable)
            for p in config.physical.values()}
    print(f"{'physical':<{pwidth}}  {'GiB':>6}  {'from':<8} {'context':<22} how")
    notes = []
    for name, f in fits.items():
        ctx = "" if f.context is None else str(f.context)
        if f.fitted:
            ctx = f"{f.context} (of {f.configured_context})"
        how = f.estimate.note if f.estimate else ""
        configured = config.physical[name].vram_gb
        print(f"{name:<{pwidth}}  {f.gb:>6.2f}  {f.source:<8} {ctx:<22} {how}")
        if f.problem:
            notes.append(f"cannot fit: {f.problem}")
        if f.error:
            notes.append(f"{name}: no estimate ({f.error[:120]})"
                         + (f"; counting vram_gb {configured:g}" if configured else ""))
        if f.warning:
            notes.append(f"warning: {f.warning}")
        if f.fitted:
            notes.append(f"{name}: context fitted to {f.context} tokens (configured "
                         f"{f.configured_context}) to fit {usable:g} GiB; longer prompts get "
                         "400 context_length_exceeded")
    for line in notes:
        print(f"  {line}")
    if usable is None:
        return
    sizes = {n: f.gb for n, f in fits.items()}
    print()
    print("co-residency with the voice models (TST-016, 017, 018; 019 holds for every LLM "
          "that fits alone):")
    for r in residency(config.physical, sizes, usable):
        print(f"  {describe(r, sizes, usable)}")


