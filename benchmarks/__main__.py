"""``python -m benchmarks``: run every section, print the table, write the JSON.

    python -m benchmarks                 the full run (several minutes on 2 cores)
    python -m benchmarks --smoke         tiny N, a few seconds per section (what CI runs)
    python -m benchmarks --only gateway,swap
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from llmux import openmp

from . import gateway, llamacpp, prefix, startup, structured, swap, tool
from .harness import Section, machine
from .report import format_table

SECTIONS = {
    "gateway": gateway.run,
    "llamacpp": llamacpp.run,
    "swap": swap.run,
    "startup": startup.run,
    "bench_tool": tool.run,
    "structured": structured.run,
    "prefix": prefix.run,
}
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny N: checks that it all works")
    p.add_argument("--only", help=f"comma-separated sections (of {', '.join(SECTIONS)})")
    p.add_argument("--out", type=Path, default=RESULTS,
                   help="where the JSON goes (default benchmarks/results/)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, GGUF)")
    return p.parse_args(argv)


async def run_all(names: list[str], work: Path, smoke: bool) -> dict[str, Section]:
    out = {}
    for name in names:
        t0 = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        try:
            section = await SECTIONS[name](work, smoke)
        except Exception as exc:
            section = Section(name)
            section.data["error"] = f"{type(exc).__name__}: {exc}"
            section.data["traceback"] = traceback.format_exc()
            print(section.data["traceback"], file=sys.stderr)
        section.data["seconds"] = round(time.perf_counter() - t0, 2)
        print(f"[bench] {name} done in {section.data['seconds']:.1f} s", file=sys.stderr,
              flush=True)
        out[name] = section
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = list(SECTIONS) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        print(f"unknown section(s): {', '.join(unknown)}; known: {', '.join(SECTIONS)}",
              file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    described = machine()
    # The benchmark sets no OpenMP variable; a target that runs llama.cpp gets the
    # caller's environment without any (the libraries' defaults) and reports its own.
    described["openmp_env_of_caller"] = openmp.settings()
    work = Path(tempfile.mkdtemp(prefix="llmux-bench-"))
    sections = asyncio.run(run_all(names, work, args.smoke))
    described["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.smoke:  # tiny N: the figures only show that every path works
        for section in sections.values():
            for row in section.rows:
                row.ok = None
    result = {
        "started": started.isoformat(timespec="seconds"),
        "mode": "smoke" if args.smoke else "full",
        "machine": described,
        "work_dir": str(work) if args.keep else None,
        "sections": {name: s.as_dict() for name, s in sections.items()},
    }
    print(format_table(result))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"{stamp}{'-smoke' if args.smoke else ''}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nresults: {path}")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work directory (logs, models): {work}")
    return 1 if any("error" in s.data for s in sections.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
