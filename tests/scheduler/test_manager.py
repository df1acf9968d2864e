"""The async manager with echo / flaky models in-process: leases, queue, failures."""

from __future__ import annotations

import asyncio

import pytest

from llmux.builtin import echo
from llmux.errors import (
    BackendNotInstalled,
    InsufficientVram,
    ModelLoadError,
    ModelNotFound,
    ServiceUnavailable,
)
from llmux.metrics import Metrics
from llmux.scheduler import FakeGpu, ModelManager, NoGpu

from .helpers import echo_model, flaky_model, production_models


def loaded(mgr) -> list[str]:
    return sorted(m["model"] for m in mgr.snapshot()["loaded"])


async def until(predicate, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_lease_loads_and_snapshot_reports(manager):
    async with manager.lease("qwen3.5-4b") as lease:
        assert lease.backend.name == "echo" and lease.handle.model.name == "qwen3.5-4b"
        (entry,) = manager.snapshot()["loaded"]
        assert entry["in_flight"] == 1 and entry["type"] == "llm"
        assert entry["vram_gb"] == 4 and entry["vram_estimated_gb"] == 4
        assert entry["vram_measured_gb"] is None and entry["loaded_since"].endswith("+00:00")
    snap = manager.snapshot()
    assert snap["loaded"][0]["in_flight"] == 0
    assert snap["vram"] == {"budget_gb": 16, "reserve_gb": 0.5, "used_gb": 4.0, "source": "config"}
    assert (snap["waiting"], snap["loading"]) == (0, None)


async def test_production_sequence(manager):
    for name in ("cohere-transcribe", "chatterbox", "qwen3.5-4b"):
        await manager.load_now(name)
    assert loaded(manager) == ["chatterbox", "cohere-transcribe", "qwen3.5-4b"]  # TST-016
    await manager.load_now("qwen3.5-9b-fp8")
    assert loaded(manager) == ["chatterbox", "cohere-transcribe", "qwen3.5-9b-fp8"]  # TST-017, 019
    await manager.load_now("gpt-oss-20b")
    assert loaded(manager) == ["gpt-oss-20b"]  # TST-018
    evicted = [(e["model"], e["reason"]) for e in manager.events if e["event"] == "evict"]
    assert evicted[-3:] == [("qwen3.5-9b-fp8", "replace"), ("chatterbox", "room"),
                            ("cohere-transcribe", "room")]
    await manager.load_now("cohere-transcribe")
    assert loaded(manager) == ["cohere-transcribe"]


async def test_concurrent_requests_share_one_load(runtimes):
    models = {"m": echo_model("m", "llm", 4, load_seconds=0.2)}
    mgr = ModelManager(runtimes, models, budget_gb=16, gpu=NoGpu())
    leases = await asyncio.gather(*(mgr.acquire("m") for _ in range(20)))
    assert echo.RECORDS["m"].loads == 1
    assert mgr.snapshot()["loaded"][0]["in_flight"] == 20
    for lease in leases:
        lease.release()
    await mgr.close()
    assert echo.RECORDS["m"].unloads == 1 and loaded(mgr) == []


async def test_swap_waits_for_leases_and_is_not_starved(manager):
    first = await manager.acquire("qwen3.5-4b")
    swap = asyncio.create_task(manager.acquire("qwen3.5-9b-fp8"))
    await until(lambda: manager.snapshot()["waiting"] == 1)
    # A new request for the model the swap must evict queues behind the swap.
    late = asyncio.create_task(manager.acquire("qwen3.5-4b"))
    await asyncio.sleep(0.05)
    assert not swap.done() and not late.done()
    assert loaded(manager) == ["qwen3.5-4b"]
    first.release()
    second = await asyncio.wait_for(swap, 2)
    assert loaded(manager) == ["qwen3.5-9b-fp8"] and not late.done()
    second.release()
    (await asyncio.wait_for(late, 2)).release()
    assert [e["model"] for e in manager.events if e["event"] == "load"] == [
        "qwen3.5-4b", "qwen3.5-9b-fp8", "qwen3.5-4b"]
    assert all(e["in_flight"] == 0 for e in manager.events if e["event"] == "evict")


async def test_requests_queued_for_a_model_are_admitted_together(manager):
    busy = await manager.acquire("qwen3.5-4b")
    tasks = [asyncio.create_task(manager.acquire(n))
             for n in ["qwen3.5-9b-fp8", "qwen3.5-4b", "qwen3.5-9b-fp8", "qwen3.5-4b"]]
    await until(lambda: manager.snapshot()["waiting"] == 4)
    busy.release()
    nine = [await asyncio.wait_for(tasks[i], 2) for i in (0, 2)]  # both 9B, one load
    assert not tasks[1].done() and not tasks[3].done()
    for lease in nine:
        lease.release()
    for i in (1, 3):
        (await asyncio.wait_for(tasks[i], 2)).release()
    assert [e["model"] for e in manager.events if e["event"] == "load"] == [
        "qwen3.5-4b", "qwen3.5-9b-fp8", "qwen3.5-4b"]


async def test_unrelated_loaded_model_is_served_while_a_swap_waits(manager):
    await manager.load_now("cohere-transcribe")
    busy = await manager.acquire("chatterbox")
    swap = asyncio.create_task(manager.acquire("chatterbox-turbo"))
    await until(lambda: manager.snapshot()["waiting"] == 1)
    (await asyncio.wait_for(manager.acquire("cohere-transcribe"), 1)).release()
    busy.release()
    (await asyncio.wait_for(swap, 2)).release()


async def test_queue_is_bounded(runtimes):
    mgr = ModelManager(runtimes, production_models(), budget_gb=16, max_waiting=2, gpu=NoGpu())
    busy = await mgr.acquire("qwen3.5-4b")
    waiting = [asyncio.create_task(mgr.acquire("qwen3.5-9b-fp8")) for _ in range(2)]
    await until(lambda: mgr.snapshot()["waiting"] == 2)
    with pytest.raises(ServiceUnavailable) as info:
        await mgr.acquire("gpt-oss-20b")
    assert info.value.retry_after >= 1 and "max_waiting" in info.value.message
    busy.release()
    for task in waiting:
        (await asyncio.wait_for(task, 2)).release()
    await mgr.close()


async def test_cancelled_waiter_is_dropped(manager):
    busy = await manager.acquire("qwen3.5-4b")
    waiter = asyncio.create_task(manager.acquire("gpt-oss-20b"))
    await until(lambda: manager.snapshot()["waiting"] == 1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert manager.snapshot()["waiting"] == 0
    # With the swap gone, the 4B is admitted at once again.
    (await asyncio.wait_for(manager.acquire("qwen3.5-4b"), 1)).release()
    busy.release()
    await asyncio.sleep(0.05)
    assert loaded(manager) == ["qwen3.5-4b"]  # nobody loads gpt-oss for a client that left


async def test_errors_before_any_wait(manager):
    with pytest.raises(ModelNotFound):
        await manager.acquire("nope")
    big = ModelManager(manager.runtimes, {"huge": echo_model("huge", "llm", 40),
                                          "x": echo_model("x", "llm", 1).__class__(
                                              **{**echo_model("x", "llm", 1).__dict__,
                                                 "backend": "missing"})},
                       budget_gb=16, gpu=NoGpu())
    with pytest.raises(InsufficientVram, match="cannot be served on this GPU"):
        await big.acquire("huge")
    with pytest.raises(BackendNotInstalled):
        await big.acquire("x")
    await big.close()


async def test_tts_that_needs_the_asr_room_fails_clearly(runtimes):
    models = {"asr": echo_model("asr", "asr", 10), "tts": echo_model("tts", "tts", 6)}
    mgr = ModelManager(runtimes, models, budget_gb=16, reserve_gb=0.5, gpu=NoGpu())
    await mgr.load_now("asr")
    with pytest.raises(InsufficientVram, match="never evicts asr"):
        await mgr.acquire("tts")
    assert loaded(mgr) == ["asr"]
    await mgr.close()


async def test_failed_load_leaves_ledger_unchanged_and_next_request_retries(flaky_runtimes, flaky):
    models = {"a": flaky_model("a", "llm", 4), "b": flaky_model("b", "llm", 4),
              "asr": flaky_model("asr", "asr", 4)}
    mgr = ModelManager(flaky_runtimes, models, budget_gb=16, gpu=NoGpu())
    await mgr.load_now("asr")
    flaky.fail_next["a"] = 1
    results = await asyncio.gather(*(mgr.acquire("a") for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, ModelLoadError) for r in results)  # one load, shared outcome
    assert "RuntimeError: simulated failure" in results[0].message
    assert loaded(mgr) == ["asr"] and flaky.loads == {"asr": 1}
    (await mgr.acquire("a")).release()
    assert loaded(mgr) == ["a", "asr"]
    await mgr.close()


async def test_oom_evicts_what_it_may_and_retries_once(flaky_runtimes, flaky):
    models = {"llm": flaky_model("llm", "llm", 4), "asr": flaky_model("asr", "asr", 4),
              "tts": flaky_model("tts", "tts", 2), "tts2": flaky_model("tts2", "tts", 2)}
    metrics = Metrics()
    mgr = ModelManager(flaky_runtimes, models, budget_gb=16, gpu=NoGpu(), metrics=metrics)
    for name in ("asr", "tts"):
        await mgr.load_now(name)
    flaky.oom_next["llm"] = 1
    (await mgr.acquire("llm")).release()
    assert loaded(mgr) == ["llm"]  # TTS then ASR went to make room
    oom = [(e["model"]) for e in mgr.events if e["event"] == "evict" and e["reason"] == "oom"]
    assert oom == ["tts", "asr"]
    # A TTS load that runs out of memory evicts the LLM, never the ASR model; twice fails.
    await mgr.load_now("asr")
    flaky.oom_next["tts2"] = 2
    with pytest.raises(ModelLoadError, match="out of memory"):
        await mgr.acquire("tts2")
    assert loaded(mgr) == ["asr"]
    body, _ = metrics.render()
    assert b'llmux_model_evictions_total{model="asr",reason="oom"} 1.0' in body
    await mgr.close()


async def test_unload_now_waits_for_leases(manager):
    lease = await manager.acquire("qwen3.5-4b")
    unload = asyncio.create_task(manager.unload_now("qwen3.5-4b"))
    await asyncio.sleep(0.05)
    assert not unload.done()
    late = asyncio.create_task(manager.acquire("qwen3.5-4b"))  # queues behind the unload
    await asyncio.sleep(0.02)
    assert not late.done()
    lease.release()
    assert await asyncio.wait_for(unload, 2) is True
    (await asyncio.wait_for(late, 2)).release()  # and loads it again
    assert await manager.unload_now("qwen3.5-4b") is True
    assert await manager.unload_now("qwen3.5-4b") is False
    assert echo.RECORDS["qwen3.5-4b"].loads == 2


async def test_preload_and_close(runtimes):
    metrics = Metrics()
    mgr = ModelManager(runtimes, production_models(), budget_gb=16, gpu=NoGpu(), metrics=metrics)
    await mgr.start(preload=["cohere-transcribe", "chatterbox"])
    assert loaded(mgr) == ["chatterbox", "cohere-transcribe"]
    await mgr.close()
    assert loaded(mgr) == []
    with pytest.raises(ServiceUnavailable, match="shutting down"):
        await mgr.acquire("chatterbox")
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    assert b'llmux_model_loads_total{model="chatterbox",reason="preload"} 1.0' in body
    assert b'llmux_model_unloads_total{model="chatterbox",reason="shutdown"} 1.0' in body


# --------------------------------------------------------------------------- CUDA accounting


async def test_cuda_budget_measurement_and_release(flaky_runtimes, flaky):
    gpu = FakeGpu(total_gb=16, used_gb=1.0, lag=3)  # someone else uses 1 GB
    flaky.gpu = gpu
    models = {"a": flaky_model("a", "llm", 4), "b": flaky_model("b", "llm", 4)}
    mgr = ModelManager(flaky_runtimes, models, budget_gb=None, reserve_gb=0.5, gpu=gpu)
    assert mgr.snapshot()["vram"]["budget_gb"] == 15 and mgr.snapshot()["vram"]["source"] == "cuda"
    (await mgr.acquire("a")).release()
    assert mgr.snapshot()["loaded"][0]["vram_measured_gb"] == 4.0
    reads = gpu.reads
    (await mgr.acquire("b")).release()
    assert gpu.reads - reads >= 3  # polled until the lagging release showed up
    await mgr.close()


async def test_measured_vram_is_kept_for_later_decisions(flaky_runtimes, flaky):
    gpu = FakeGpu(total_gb=16)
    flaky.gpu = gpu
    models = {"llm": flaky_model("llm", "llm", 4), "asr": flaky_model("asr", "asr", 4)}
    mgr = ModelManager(flaky_runtimes, models, budget_gb=16, reserve_gb=0.5, gpu=gpu)
    gpu.other_gb = 0
    real = flaky_model("llm", "llm", 4)
    orig_allocate = gpu.allocate
    gpu.allocate = lambda name, gb: orig_allocate(name, 12 if name == "llm" else gb)
    (await mgr.acquire("llm")).release()
    assert mgr.vram_of("llm") == 12 and real.vram_gb == 4
    await mgr.unload_now("llm")
    await mgr.load_now("asr")
    (await mgr.acquire("llm")).release()  # 12 + 4 > 15.5: the ASR goes now
    assert loaded(mgr) == ["llm"]
    await mgr.close()
