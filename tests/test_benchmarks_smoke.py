"""The benchmark keeps working: ``python -m benchmarks --smoke`` (tiny N) runs every section
and writes its JSON with the machine described; ``llmux bench`` and its admin route answer.
The figures themselves are not asserted (the benchmark reports its own targets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from llmux.app import create_app

from .conftest import DEMO_ADMIN_KEY, DEMO_DIR, REPO

SECTIONS = {"gateway", "llamacpp", "swap", "startup", "bench_tool", "structured", "prefix"}


@pytest.mark.slow
@pytest.mark.timeout(600)  # every section, tiny models included, on 2 busy cores
def test_smoke_run_writes_every_section(tmp_path):
    # A caller's OpenMP setting must reach none of the llama.cpp targets (each reports what
    # its process started with).
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    out = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke", "--out", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=560, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    files = list(tmp_path.glob("*-smoke.json"))
    assert len(files) == 1
    result = json.loads(files[0].read_text())
    machine = result["machine"]
    for key in ("cpu_model", "cpu_cores", "load_average", "load_average_end", "python",
                "memory_gb", "gpus"):
        assert key in machine
    assert {"torch", "llama_cpp_python", "aiohttp"} <= set(machine["versions"])
    assert set(result["sections"]) == SECTIONS
    for name, section in result["sections"].items():
        assert "error" not in section["data"], (name, section["data"].get("traceback"))
        assert section["rows"] or section["skipped"], name
        for row in section["rows"]:
            assert row["section"] == name and row["metric"]
    settings = result["sections"]["llamacpp"]["data"]["settings"]
    assert set(settings) == {"direct", "floor", "llmux", "llama_server"}
    threads = {s.pop("n_threads") for s in settings.values()}
    assert len(threads) == 1  # the same threads everywhere
    for way, s in settings.items():
        assert set(s.values()) == {"default"}, way
        assert f"llamacpp {way}: n_threads" in out.stdout
    assert "SSE tokens/s, one stream" in out.stdout  # the table was printed
    assert str(files[0]) in out.stdout


def _app(demo_config, builtin_pm):
    return create_app(demo_config, builtin_pm)


async def test_bench_route_measures_the_cpu_half_and_says_why_not_the_gpu(
        aiohttp_client, demo_config, builtin_pm):
    client = await aiohttp_client(_app(demo_config, builtin_pm))
    admin = {"Authorization": f"Bearer {DEMO_ADMIN_KEY}"}
    resp = await client.post("/v1/admin/bench", headers=admin,
                             json={"model": "Chatterbox", "device": "both", "runs": 1})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["model"] == "chatterbox" and body["type"] == "tts" and body["where"] == "server"
    assert body["devices"]["cpu"]["rtf"] is not None
    assert "skipped" in body["devices"]["cuda"]  # no GPU on the test machine
    assert body["speedup"] is None

    resp = await client.post("/v1/admin/bench", headers=admin,
                             json={"model": "qwen3.5-4b", "device": "cpu", "runs": 1,
                                   "max_tokens": 4})
    half = (await resp.json())["devices"]["cpu"]
    assert half["completion_tokens"] == 4 and half["ttft_ms"] is not None
    # measured in a process of its own, not beside the server's OpenMP teams
    assert half["process"].startswith("its own") and half["pid"] != os.getpid()
    assert half["settings"]["device"] == "cpu"


async def test_bench_route_is_admin_only_and_validates(aiohttp_client, demo_config, builtin_pm):
    client = await aiohttp_client(_app(demo_config, builtin_pm))
    from .conftest import AUTH

    resp = await client.post("/v1/admin/bench", headers=AUTH, json={"model": "Chatterbox"})
    assert resp.status == 403
    admin = {"Authorization": f"Bearer {DEMO_ADMIN_KEY}"}
    resp = await client.post("/v1/admin/bench", headers=admin, json={"model": "nope"})
    assert resp.status == 404
    resp = await client.post("/v1/admin/bench", headers=admin,
                             json={"model": "Chatterbox", "device": "tpu"})
    assert resp.status == 400
    assert (await resp.json())["error"]["param"] == "device"


def test_llmux_bench_standalone_cpu_half():
    out = subprocess.run([sys.executable, "-m", "llmux", "bench", "chatterbox", "--config",
                          str(DEMO_DIR), "--standalone", "--runs", "1", "--json"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["where"] == "standalone"
    assert result["devices"]["cpu"]["audio_seconds"] > 0
