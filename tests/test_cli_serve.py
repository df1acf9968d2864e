"""`llmux serve` as a user starts it: a missing backend is a warning, not a refusal."""

from __future__ import annotations

import json
import urllib.request

from llmux.testing import serve_process

from .conftest import AUTH, REPO, demo_models, write_config


def test_serve_starts_without_a_backend_and_says_which(tmp_path):
    models = demo_models()
    models["physical"]["chatterbox"]["backend"] = "kokoro"
    models["physical"]["chatterbox"].pop("options", None)
    directory = write_config(tmp_path / "config", models)
    with serve_process(directory, tmp_path / "serve.log", cwd=REPO) as server:
        health = json.load(urllib.request.urlopen(server.url + "/health"))
        assert health["status"] == "ok"
        request = urllib.request.Request(server.url + "/v1/models", headers=AUTH)
        listing = json.load(urllib.request.urlopen(request))
        entry = next(m for m in listing["data"] if m["id"] == "Chatterbox")
        assert entry["available"] is False
    output = server.output()
    assert "WARNING" in output and "backend 'kokoro' is not provided by any installed plugin" in output
    assert "its models are listed but answer 503 until it is installed" in output


def test_serve_refuses_the_example_keys(tmp_path):
    """The shipped api_keys.yaml holds readable example keys: serve must not start on them,
    and exits 78 (EX_CONFIG), which the Quadlet unit does not restart."""
    import subprocess
    import sys

    directory = write_config(tmp_path / "config", demo_models())
    (directory / "api_keys.yaml").write_text((REPO / "config" / "api_keys.yaml").read_text())
    out = subprocess.run([sys.executable, "-m", "llmux", "serve", "--config", str(directory),
                          "--port", "1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 78
    text = out.stdout + out.stderr
    assert "still holds the example keys of open-webui, opencode, whisper-remote, admin" in text
    assert "llmux keys add NAME" in text
