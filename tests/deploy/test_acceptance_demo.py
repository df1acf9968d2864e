"""scripts/acceptance.py passes against `llmux serve --config config/demo` (TST-008…019)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from llmux.testing import serve_process

from .helpers import REPO

DEMO = REPO / "config" / "demo"



def demo_keys() -> tuple[str, str | None]:
    keys = yaml.safe_load((DEMO / "api_keys.yaml").read_text())["keys"]
    user = next(k["key"] for k in keys if not k.get("admin"))
    admin = next((k["key"] for k in keys if k.get("admin")), None)
    return user, admin


@pytest.fixture
def demo_server(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with serve_process(DEMO, tmp_path / "serve.log", env=env, cwd=REPO) as server:
        yield server.url


@pytest.mark.slow
def test_acceptance_passes_against_the_demo(demo_server):
    key, admin = demo_keys()
    command = [sys.executable, str(REPO / "scripts/acceptance.py"), "--url", demo_server,
               "--key", key, "--demo", "--timeout", "60"]
    if admin:
        command += ["--admin-key", admin]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " 0 failed" in result.stdout
    for requirement in [f"TST-{n:03d}" for n in range(8, 20)]:
        assert requirement in result.stdout, f"{requirement} was not checked"


def test_acceptance_fails_on_a_wrong_key(demo_server):
    result = subprocess.run([sys.executable, str(REPO / "scripts/acceptance.py"), "--url",
                             demo_server, "--key", "sk-not-a-key-00000000", "--demo",
                             "--only", "models"], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "FAIL" in result.stdout


def test_acceptance_helpers():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import acceptance_material as acceptance
    finally:
        sys.path.pop(0)
    png = acceptance.png_square()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" in png
    assert acceptance.tone_wav()[:4] == b"RIFF"
    assert acceptance.recall("The quick brown fox", "the quick brown box") == 0.75
    assert acceptance.is_mp3(b"ID3\x04") and not acceptance.is_mp3(b"RIFF")
    assert len(acceptance.VIRTUAL) == 16
    clips = acceptance.load_clips(None)
    assert clips["en"].expected and clips["de"].expected  # the bundled speech clips
