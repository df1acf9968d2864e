"""``llmux sources``: the download plan of models.yaml, for scripts/download_models.sh.

The shell script never parses YAML itself: it reads this command's TSV output, one physical
model a line, tab-separated::

    name  repo  revision  path  include  gated

``include`` is the comma-separated list of file patterns, or ``-`` for the whole repository
(``-`` rather than an empty field, because bash's ``read`` merges adjacent tabs);
``gated`` is ``true`` or ``false``. Models without a ``source`` are left out.

Runs as ``llmux sources`` or, where the entry point is not installed,
``python -m llmux.cli.sources``.
"""

from __future__ import annotations

import argparse
import json
import sys

FIELDS = ("name", "repo", "revision", "path", "include", "gated")


def register(sub) -> None:
    p = sub.add_parser(
        "sources", help="print what scripts/download_models.sh downloads",
        description="Print every physical model's source (hub repo, revision, files) and path.",
    )
    _arguments(p)
    p.set_defaults(func=run)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="DIR", default=argparse.SUPPRESS,
                   help="config directory (default: $LLMUX_CONFIG_DIR, then ./config)")
    p.add_argument("--format", choices=("tsv", "json"), default="tsv",
                   help="tsv (for the download script, the default) or json")


def plan(config) -> list[dict]:
    """One entry per physical model that has a ``source``."""
    out = []
    for model in config.physical.values():
        source = model.source
        if not source:
            continue
        out.append({
            "name": model.name,
            "repo": source["repo"],
            "revision": source.get("revision") or "main",
            "path": model.path,
            "include": list(source.get("include") or ()),
            "gated": bool(source.get("gated", False)),
        })
    return out


def _tsv_problems(entries: list[dict]) -> list[str]:
    problems = []
    for e in entries:
        values = [e["name"], e["repo"], e["revision"], e["path"], *e["include"]]
        if any(not v or any(c in v for c in "\t\n") for v in values):
            problems.append(f"{e['name']}: a field is empty or contains a tab or newline")
        if any("," in p for p in e["include"]):
            problems.append(f"{e['name']}: an include pattern contains ',' (not allowed)")
        if e["path"].startswith("/") or ".." in e["path"].split("/"):
            problems.append(f"{e['name']}: path {e['path']!r} must stay inside models_dir")
    return problems


def run(args: argparse.Namespace) -> int:
    from ..config import load_config, resolve_config_dir
    from ..errors import ConfigError

    directory = resolve_config_dir(getattr(args, "config", None))
    try:
        config = load_config(directory)  # schema level: no runtimes needed on the host
    except ConfigError as exc:
        print(f"{directory}: {len(exc.errors)} error(s)", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return 1
    entries = plan(config)
    problems = _tsv_problems(entries)
    if problems:
        for line in problems:
            print(f"{directory}/models.yaml: {line}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(entries, indent=2))
        return 0
    for e in entries:
        row = {**e, "include": ",".join(e["include"]) or "-",
               "gated": "true" if e["gated"] else "false"}
        print("\t".join(row[f] for f in FIELDS))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmux.cli.sources", description=__doc__)
    _arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
