"""The speed tables compare like with like: every llama.cpp target of the benchmark runs with
the libraries' OpenMP defaults whatever the caller's environment holds, reports the settings
its process really started with, and ``llmux bench`` measures its CPU half on every core and
says so. Nothing here is timed."""

from __future__ import annotations

import asyncio
import dataclasses
import os

import pytest

from benchmarks.llama_worker import Worker, library_env, process_env
from llmux import openmp
from llmux.measure import cpu_model, settings_of

from .conftest import REPO

LEAKY = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0", "OMP_NUM_THREADS": "1"}


def test_the_baselines_start_without_the_callers_openmp_variables():
    env = library_env({**LEAKY, "PATH": "/bin", "HOME": "/root"})
    assert env == {"PATH": "/bin", "HOME": "/root"}
    assert openmp.settings(env) == {name: "default" for name in openmp.VARIABLES}
    assert openmp.settings(LEAKY)["OMP_WAIT_POLICY"] == "PASSIVE"


def test_the_worker_reports_the_settings_its_process_started_with(monkeypatch, tmp_path):
    pytest.importorskip("llama_cpp")
    from benchmarks.gguf_model import SMOKE_SHAPE, build_gguf

    gguf = build_gguf(tmp_path / "w.gguf", SMOKE_SHAPE)
    for name, value in LEAKY.items():  # the benchmark's own process has them
        monkeypatch.setenv(name, value)

    async def run():
        worker = Worker(gguf["path"], 256, 2, tmp_path / "worker.log")
        hello = await worker.start(REPO)
        try:
            started = process_env(worker.proc.pid)
            floor = await worker.ask(way="floor", tag="Run 0", max_tokens=3)
        finally:
            await worker.stop()
        return hello, started, floor

    hello, started, floor = asyncio.run(run())
    assert hello["openmp"] == {name: "default" for name in openmp.VARIABLES}
    assert hello["n_threads"] == 2
    if started is not None:  # Linux: what the kernel says the process started with
        assert not any(k.startswith(openmp.PREFIXES) for k in started)
    assert floor["tokens"] == 3 and floor["finish"] == "length"


def test_llmux_serve_sets_no_openmp_variable(monkeypatch, tmp_path):
    from llmux.cli import main

    for name in openmp.VARIABLES:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "models.yaml").write_text("not: [valid\n")
    assert main(["serve", "--config", str(tmp_path)]) != 0
    assert openmp.settings() == {name: "default" for name in openmp.VARIABLES}


@dataclasses.dataclass(frozen=True)
class _Model:
    options: dict


def test_the_cpu_half_runs_on_every_core_unless_the_operator_chose():
    schema = {"properties": {"n_threads": {"type": "integer"}}}
    half = cpu_model(_Model({"model_file": "m.gguf"}), schema)
    assert half.options == {"model_file": "m.gguf", "n_threads": os.cpu_count()}
    assert settings_of(half, "cpu")["threads"] == os.cpu_count()
    chosen = _Model({"n_threads": 3})
    assert cpu_model(chosen, schema) is chosen
    other = _Model({})  # a backend without n_threads: its runtime's default, said so
    assert cpu_model(other, {"properties": {}}) is other
    assert settings_of(other, "cpu")["threads"] == "the runtime's default"
