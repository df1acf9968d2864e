"""scripts/acceptance.py passes against `llmux serve --config config/demo` (TST-008…019)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from .helpers import REPO

DEMO = REPO / "config" / "demo"



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_keys() -> tuple[str, str | None]:
    keys = yaml.safe_load((DEMO / "api_keys.yaml").read_text())["keys"]
    user = next(k["key"] for k in keys if not k.get("admin"))
    admin = next((k["key"] for k in keys if k.get("admin")), None)
    return user, admin


@pytest.fixture
def demo_server():
    port = free_port()
    command = [sys.executable, "-c", "import sys; from llmux.cli import main; sys.exit(main())",
               "serve", "--config", str(DEMO), "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    pytest.fail(f"llmux serve did not start:\n{server.communicate()[0]}")
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stdout:
            server.stdout.close()


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
        import acceptance
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
