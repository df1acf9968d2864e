"""Property tests against the async manager (not only the policy).

Random sequences of requests, finishes, client disconnects, failing and out-of-memory
loads run against a real :class:`ModelManager` with in-process models. The ``flaky``
runtime checks from its side that no two LLMs / TTS models are resident, that the resident
VRAM stays within the budget, that nothing is loaded twice and that no model is unloaded
while the test holds a lease on it. The manager's event log is checked for the priority
rule. Every request must end in a lease or an error, and everything must drain (no deadlock).

``HYPOTHESIS_PROFILE=thorough`` runs thousands of sequences (CI); the default is quicker.
"""

from __future__ import annotations

import asyncio
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st

from llmux.errors import LlmuxError
from llmux.scheduler import ModelManager, NoGpu

from .helpers import flaky_model
from .fakes import STATE

settings.register_profile("default", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

MODELS = {
    "llm4": ("llm", 4.0), "llm9": ("llm", 9.0), "oss": ("llm", 13.0),
    "asr": ("asr", 4.0), "tts": ("tts", 2.0), "tts-turbo": ("tts", 2.0),
    "big-tts": ("tts", 12.0),  # only fits when the ASR model is out: must fail, not evict it
}
NAMES = sorted(MODELS)
PRIORITY = {"llm": 0, "tts": 1, "asr": 2}  # evicted first to last (written out, not imported)

KINDS = ["request"] * 5 + ["finish"] * 3 + ["tick"] * 2 + ["disconnect", "fail", "oom", "sleep"]
ops = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 63)), min_size=8, max_size=80)


@given(ops=ops, max_waiting=st.integers(1, 8))
def test_manager_invariants(flaky_runtimes, ops, max_waiting):
    asyncio.run(asyncio.wait_for(_scenario(flaky_runtimes, ops, max_waiting), 20))


async def _scenario(runtimes, ops, max_waiting) -> None:
    STATE.reset(usable_gb=15.5)
    models = {n: flaky_model(n, t, v) for n, (t, v) in MODELS.items()}
    mgr = ModelManager(runtimes, models, budget_gb=16, reserve_gb=0.5,
                       max_waiting=max_waiting, gpu=NoGpu())
    await mgr.start()
    tasks: list[asyncio.Task] = []
    done: list[asyncio.Event] = []
    outcomes: dict[int, str] = {}

    async def request(i: int, name: str) -> None:
        try:
            lease = await mgr.acquire(name)
        except LlmuxError as exc:
            outcomes[i] = f"error:{exc.code}"
            return
        except asyncio.CancelledError:
            outcomes[i] = "left while waiting"
            raise
        STATE.held[name] = STATE.held.get(name, 0) + 1
        outcomes[i] = "lease"
        try:
            await done[i].wait()
        finally:
            STATE.held[name] -= 1
            lease.release()

    for op, arg in ops:
        name = NAMES[arg % len(NAMES)]
        if op == "request":
            done.append(asyncio.Event())
            tasks.append(asyncio.create_task(request(len(tasks), name)))
        elif op == "finish" and tasks:
            done[arg % len(tasks)].set()
        elif op == "disconnect" and tasks:
            tasks[arg % len(tasks)].cancel()
        elif op == "fail":
            STATE.fail_next[name] = STATE.fail_next.get(name, 0) + 1
        elif op == "oom":
            STATE.oom_next[name] = STATE.oom_next.get(name, 0) + 1
        elif op == "tick":
            for _ in range(arg % 5):
                await asyncio.sleep(0)
        elif op == "sleep":
            await asyncio.sleep((arg % 3 + 1) / 1000)
        _check_ledger(mgr)

    for event in done:  # every client finishes; what is still queued must get through
        event.set()
    async with asyncio.timeout(10):  # a deadlock fails here
        await asyncio.gather(*tasks, return_exceptions=True)
    for i, task in enumerate(tasks):
        assert task.cancelled() or outcomes.get(i) in ("lease",) or outcomes[i].startswith(
            "error:"), (i, outcomes.get(i))
        if not task.cancelled():
            assert outcomes[i] != "left while waiting"
    snap = mgr.snapshot()
    assert snap["waiting"] == 0 and all(m["in_flight"] == 0 for m in snap["loaded"])
    _check_events(mgr)
    evictions = sum(e["event"] == "evict" for e in mgr.events)
    note_event(f"evictions: {min(evictions, 5)}{'+' if evictions >= 5 else ''}")
    note_event(f"outcomes: {sorted(set(o.split(':')[0] for o in outcomes.values()))}")
    await mgr.close()
    assert STATE.violations == [], STATE.violations
    assert STATE.resident == {}


def _check_ledger(mgr: ModelManager) -> None:
    loaded = mgr.snapshot()["loaded"]
    for t in ("llm", "tts"):
        assert sum(m["type"] == t for m in loaded) <= 1, loaded
    assert sum(m["vram_gb"] for m in loaded) <= 15.5


def _check_events(mgr: ModelManager) -> None:
    for e in mgr.events:
        if e["event"] != "evict":
            continue
        assert e["in_flight"] == 0, e
        target = MODELS[e["for"]][0]
        victim = MODELS[e["model"]][0]
        assert not (target == "tts" and victim == "asr"), e  # a TTS load never evicts ASR
        if e["reason"] == "room":  # lowest priority first: nothing lower stays behind
            others = [m for m in e["loaded"] if m.name != e["model"]]
            assert all(PRIORITY[m.type] >= PRIORITY[victim] for m in others), e
        if e["reason"] == "replace":
            assert victim == target
