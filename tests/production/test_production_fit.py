"""The shipped configuration on the nine production checkpoints at their real shapes:
check-config passes and tells the true sizes, the scheduling scenarios hold with the sizes
llmux then uses, a model that cannot fit is its own problem, and a fitted context is
enforced with OpenAI's ``context_length_exceeded``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llmux.config import load_config
from llmux.plugins import get_plugin_manager
from llmux.runtime import Runtimes
from llmux.sizing import fit_model

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def production(production_models_dir, tmp_path_factory):
    """The shipped config directory, its models read from the production shapes."""
    directory = tmp_path_factory.mktemp("config")
    models = yaml.safe_load((REPO / "config" / "models.yaml").read_text())
    models["models_dir"] = str(production_models_dir)
    (directory / "models.yaml").write_text(yaml.safe_dump(models))
    (directory / "api_keys.yaml").write_text((REPO / "config" / "api_keys.yaml").read_text())
    runtimes = Runtimes(get_plugin_manager())
    config = load_config(directory, runtimes)
    usable = config.budget_gb - config.reserve_gb
    fits = {p.name: fit_model(runtimes.get(p.backend), p, usable) for p in config.physical.values()}
    return directory, config, fits


def test_check_config_passes_and_tells_the_true_sizes(production):
    directory, config, fits = production
    env = {**os.environ, "LLMUX_MODELS_DIR": ""}
    env.pop("LLMUX_MODELS_DIR")
    out = subprocess.run([sys.executable, "-m", "llmux", "check-config", str(directory)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    for name, f in fits.items():
        assert f.error is None and f.problem is None, (name, f)
        assert f.source == "estimate"  # the shipped config gives no vram_gb: the files decide
        table = out.stdout.split("\nphysical ", 1)[1]
        line = next(ln for ln in table.splitlines() if ln.startswith(name + " "))
        assert f"{f.gb:.2f}" in line
    assert "co-residency" in out.stdout
    usable = config.budget_gb - config.reserve_gb
    assert all(f.gb <= usable for f in fits.values())  # every model loads on the 16 GB card


def test_the_true_sizes_are_not_the_seeds(production):
    _, _, fits = production
    gb = {n: f.gb for n, f in fits.items()}
    # BF16 weights alone would be 8.5 GiB: FP8 on load brings the 4B beside ASR and TTS
    assert 5.5 < gb["qwen3.5-4b"] < 7.5
    assert gb["qwen3.5-4b"] + gb["cohere-transcribe"] + gb["chatterbox-multilingual"] <= 15.1
    # the 9B FP8 cannot sit beside ASR (TST-017 cannot hold on this card)
    assert gb["qwen3.5-9b-fp8"] + gb["cohere-transcribe"] > 15.1
    # gpt-oss fits alone at 32k only because the prefill is chunked and attention bounded
    assert 13.5 < gb["gpt-oss-20b"] < 15.1 and fits["gpt-oss-20b"].context == 32768
    # the BF16 uncensored copy is sized as MXFP4 after quantising on load
    assert gb["gpt-oss-20b-uncensored"] == pytest.approx(gb["gpt-oss-20b"], rel=0.02)
    for tts in ("chatterbox", "chatterbox-turbo", "chatterbox-multilingual"):
        assert gb[tts] < 3.0  # T3 in bfloat16 (3.6-3.8 GiB in float32)


def test_unquantised_4b_does_not_fit_beside_the_voice_models(production):
    directory, config, fits = production
    from dataclasses import replace

    runtimes = Runtimes(get_plugin_manager())
    p = config.physical["qwen3.5-4b"]
    bf16 = fit_model(runtimes.get(p.backend), replace(
        p, options={**p.options, "quantize": None}), 15.1)
    assert bf16.gb > fits["qwen3.5-4b"].gb + 3  # why the production config quantises it


def test_a_smaller_budget_fits_contexts_and_names_what_cannot_fit(production):
    _, config, _ = production
    runtimes = Runtimes(get_plugin_manager())
    oss = config.physical["gpt-oss-20b"]
    f = fit_model(runtimes.get(oss.backend), oss, 13.5)  # weights 12.8 GiB + a little room
    assert f.fitted and f.problem is None
    assert 4096 <= f.context < 32768 and f.context % 256 == 0 and f.gb <= 13.5
    bigger = fit_model(runtimes.get(oss.backend), oss, 13.5 + 0.2)
    assert bigger.context > f.context  # the largest that fits, not just any
    never = fit_model(runtimes.get(oss.backend), oss, 10.0)
    assert never.problem and "cannot be served" in never.problem and "10.00 GiB" in never.problem


async def test_scheduling_scenarios_with_the_sizes_llmux_uses(production, aiohttp_client,
                                                               tmp_path):
    """TST-016…019 through HTTP: echo models carrying the sizes computed above."""
    from llmux.app import create_app
    from llmux.scheduler import NoGpu
    from tests.scheduler.helpers import ADMIN, USER, chat, resident, speak, transcribe

    _, config, fits = production
    names = ["qwen3.5-4b", "qwen3.5-9b-fp8", "gpt-oss-20b", "cohere-transcribe", "chatterbox"]
    physical = {n: {"type": config.physical[n].type, "backend": "echo", "path": n,
                    "vram_gb": fits[n].gb} for n in names}
    for n in names[:3]:
        physical[n]["chat_format"] = config.physical[n].chat_format
    virtual = {"4b": {"physical": "qwen3.5-4b"}, "9b": {"physical": "qwen3.5-9b-fp8"},
               "oss": {"physical": "gpt-oss-20b"},
               "cohere-transcribe": {"physical": "cohere-transcribe"},
               "Chatterbox": {"physical": "chatterbox"}}
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "models.yaml").write_text(yaml.safe_dump({
        "models_dir": ".", "vram": {"budget_gb": config.budget_gb, "reserve_gb": config.reserve_gb},
        "physical": physical, "virtual": virtual}))
    keys = [{"name": "user", "key": USER["Authorization"][7:]},
            {"name": "admin", "key": ADMIN["Authorization"][7:], "admin": True}]
    (directory / "api_keys.yaml").write_text(yaml.safe_dump({"keys": keys}))
    pm = get_plugin_manager(load_entry_points=False)
    app = create_app(load_config(directory, Runtimes(pm)), pm, gpu=NoGpu())
    client = await aiohttp_client(app)

    await speak(client, "Chatterbox")
    await transcribe(client)
    await chat(client, "4b")
    assert await resident(client) == ["chatterbox", "cohere-transcribe", "qwen3.5-4b"]  # 016
    await chat(client, "9b")  # 017's next best: neither voice model fits beside the 9B
    assert await resident(client) == ["qwen3.5-9b-fp8"]  # and 019: the 4B was replaced
    await transcribe(client)
    await chat(client, "oss")
    assert await resident(client) == ["gpt-oss-20b"]  # 018
    await transcribe(client)
    assert await resident(client) == ["cohere-transcribe"]  # 018: ASR evicts the LLM


async def test_a_fitted_context_is_served_and_enforced(aiohttp_client, tmp_path):
    """A model over the budget at its configured context is served at the fitted one:
    /v1/models and /health say so, and a longer prompt gets 400 context_length_exceeded."""
    from llmux.app import create_app
    from llmux.scheduler import NoGpu
    from tests.scheduler.helpers import USER

    physical = {
        "big": {"type": "llm", "backend": "echo", "path": "big", "chat_format": "plain",
                "options": {"weights_gb": 10, "kv_gb_per_1k_tokens": 0.5, "context": 32768}},
        "huge": {"type": "llm", "backend": "echo", "path": "huge", "chat_format": "plain",
                 "options": {"weights_gb": 20, "context": 8192}},
    }
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "models.yaml").write_text(yaml.safe_dump({
        "models_dir": ".", "vram": {"budget_gb": 15.6, "reserve_gb": 0.5},
        "physical": physical,
        "virtual": {"big": {"physical": "big"}, "huge": {"physical": "huge"}}}))
    (directory / "api_keys.yaml").write_text(yaml.safe_dump(
        {"keys": [{"name": "user", "key": USER["Authorization"][7:]}]}))
    pm = get_plugin_manager(load_entry_points=False)
    client = await aiohttp_client(create_app(load_config(directory, Runtimes(pm)), pm,
                                             gpu=NoGpu()))
    async with client.get("/v1/models", headers=USER) as resp:
        models = {m["id"]: m for m in (await resp.json())["data"]}
    # 10 + 0.5 x ctx/1024 <= 15.1  ->  ctx <= 10444.8  ->  10240 (a multiple of 256)
    assert models["big"]["context_length"] == 10240
    assert models["huge"]["available"] is False and "cannot be served" in \
        models["huge"]["unavailable_reason"]
    async with client.get("/health") as resp:
        sizes = (await resp.json())["sizes"]
    assert sizes["big"]["context_fitted"] is True and sizes["big"]["configured_context"] == 32768
    assert sizes["big"]["vram_gb"] == 15.0 and sizes["huge"]["problem"]

    long = {"model": "big", "messages": [{"role": "user", "content": "word " * 10300}]}
    async with client.post("/v1/chat/completions", json=long, headers=USER) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "context_length_exceeded"
    short = {"model": "big", "messages": [{"role": "user", "content": "hello"}]}
    async with client.post("/v1/chat/completions", json=short, headers=USER) as resp:
        assert resp.status == 200
    async with client.post("/v1/chat/completions", json={**short, "model": "huge"},
                           headers=USER) as resp:
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == "insufficient_vram"
