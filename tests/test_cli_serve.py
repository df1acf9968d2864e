"""`llmux serve` as a user starts it: a missing backend is a warning, not a refusal."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

from llmux.testing import free_port

from .conftest import AUTH, REPO, demo_models, write_config


def test_serve_starts_without_a_backend_and_says_which(tmp_path):
    models = demo_models()
    models["physical"]["chatterbox"]["backend"] = "kokoro"
    models["physical"]["chatterbox"].pop("options", None)
    directory = write_config(tmp_path / "config", models)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmux", "serve", "--config", str(directory), "--port", str(port)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/health"))
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "llmux serve did not answer /health"
                time.sleep(0.1)
        assert health["status"] == "ok"
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models", headers=AUTH)
        listing = json.load(urllib.request.urlopen(request))
        entry = next(m for m in listing["data"] if m["id"] == "Chatterbox")
        assert entry["available"] is False
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert "WARNING" in output and "backend 'kokoro' is not provided by any installed plugin" in output
    assert "its models are listed but answer 503 until it is installed" in output
