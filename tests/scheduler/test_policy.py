"""The pure policy, rule by rule (docs/scheduling.md)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmux.scheduler.policy import (
    PRIORITY,
    REPLACE,
    ROOM,
    Action,
    LoadedModel,
    decide,
    evictable_after_oom,
)

BUDGET = 15.5  # 16 GB minus the 0.5 GB reserve

LLM4 = LoadedModel("qwen3.5-4b", "llm", 4)
LLM9 = LoadedModel("qwen3.5-9b-fp8", "llm", 9)
OSS = LoadedModel("gpt-oss-20b", "llm", 13)
ASR = LoadedModel("cohere-transcribe", "asr", 4)
TTS = LoadedModel("chatterbox", "tts", 2)
TURBO = LoadedModel("chatterbox-turbo", "tts", 2)


def busy(m: LoadedModel, n: int = 1) -> LoadedModel:
    return LoadedModel(m.name, m.type, m.vram_gb, n)


def ask(loaded, m: LoadedModel, budget: float = BUDGET):
    return decide(loaded, m.name, m.type, m.vram_gb, budget)


def test_loaded_model_is_ready():
    assert ask([ASR, LLM4], LLM4).action is Action.READY


def test_loads_alongside_when_it_fits():
    d = ask([ASR, TTS], LLM4)
    assert (d.action, d.evict) == (Action.LOAD, ())


def test_tst016_4b_with_asr_and_tts():
    assert ask([ASR, TTS], LLM4).evict == ()


def test_tst017_9b_with_asr_and_tts_fits_exactly():  # 9 + 4 + 2 = 15 <= 15.5
    assert ask([ASR, TTS], LLM9).evict == ()


def test_tst018_gpt_oss_evicts_tts_then_asr():
    d = ask([ASR, TTS], OSS)
    assert d.action is Action.LOAD
    assert d.evict == ("chatterbox", "cohere-transcribe")
    assert d.reasons == {"chatterbox": ROOM, "cohere-transcribe": ROOM}


def test_tst018_asr_after_gpt_oss_evicts_the_llm():
    d = ask([OSS], ASR)
    assert (d.action, d.evict) == (Action.LOAD, ("gpt-oss-20b",))


def test_tst019_second_llm_replaces_the_first_even_if_both_fit():
    d = ask([LLM4, ASR], LLM9, budget=100)
    assert (d.action, d.evict, d.reasons) == (Action.LOAD, ("qwen3.5-4b",), {"qwen3.5-4b": REPLACE})


def test_second_tts_replaces_the_first():
    d = ask([TTS, ASR], TURBO, budget=100)
    assert (d.evict, d.reasons) == (("chatterbox",), {"chatterbox": REPLACE})


def test_llm_evicted_before_tts_and_asr():
    # 4B + ASR + TTS loaded on a tight budget; a TTS swap that needs room takes the LLM.
    d = ask([LLM9, ASR, TTS], LoadedModel("big-tts", "tts", 4), budget=BUDGET)
    assert d.evict == ("chatterbox", "qwen3.5-9b-fp8")  # replace first, then room: LLM


def test_tts_never_evicts_asr_evicts_llm_instead():
    d = ask([LLM9, ASR], LoadedModel("big-tts", "tts", 4), budget=16)
    assert d.evict == ("qwen3.5-9b-fp8",)
    assert "cohere-transcribe" not in d.evict


def test_tts_that_could_only_fit_by_evicting_asr_fails_clearly():
    d = ask([ASR], LoadedModel("big-tts", "tts", 12), budget=BUDGET)
    assert d.action is Action.NEVER
    assert "never evicts cohere-transcribe (asr, 4 GB)" in d.message


def test_asr_load_evicts_llm_then_tts():
    d = ask([LLM9, TTS], LoadedModel("big-asr", "asr", 14), budget=BUDGET)
    assert d.evict == ("qwen3.5-9b-fp8", "chatterbox")


def test_asr_load_evicts_only_the_llm_when_that_is_enough():
    d = ask([LLM9, TTS], LoadedModel("asr2", "asr", 6), budget=BUDGET)
    assert d.evict == ("qwen3.5-9b-fp8",)


def test_model_in_use_is_never_evicted_wait_for_its_leases():
    d = ask([busy(LLM4), ASR], LLM9)
    assert d.action is Action.WAIT
    assert d.evict == ("qwen3.5-4b",)
    assert d.wait_for == ("qwen3.5-4b",)


def test_wait_does_not_change_the_plan():
    idle, used = ask([ASR, TTS], OSS), ask([busy(ASR, 3), TTS], OSS)
    assert idle.evict == used.evict
    assert used.wait_for == ("cohere-transcribe",)


def test_idle_models_are_not_waited_for():
    d = ask([ASR, TTS, busy(LLM9)], OSS)
    assert d.action is Action.WAIT and d.wait_for == ("qwen3.5-9b-fp8",)


def test_larger_than_budget_never_fits():
    d = ask([], LoadedModel("huge", "llm", 20))
    assert d.action is Action.NEVER
    assert "can never be loaded" in d.message and "20 GB" in d.message


def test_oom_victims_follow_the_priority_rule():
    loaded = [busy(LLM4), ASR, TTS]
    assert evictable_after_oom(loaded, "llm") == ("chatterbox", "cohere-transcribe")
    assert evictable_after_oom(loaded, "tts") == ("chatterbox",)
    assert evictable_after_oom([LLM4, ASR, TTS], "asr") == (
        "qwen3.5-4b", "chatterbox", "cohere-transcribe")


# --------------------------------------------------------------------------- properties

loaded_models = st.lists(
    st.builds(
        LoadedModel,
        name=st.sampled_from(["a", "b", "c", "d", "e", "f"]),
        type=st.sampled_from(["llm", "asr", "tts"]),
        vram_gb=st.floats(0.5, 10),
        in_use=st.integers(0, 2),
    ),
    max_size=5,
    unique_by=lambda m: m.name,
)


@settings(max_examples=400, deadline=None)
@given(loaded=loaded_models, name=st.sampled_from(["a", "x", "y"]),
       type=st.sampled_from(["llm", "asr", "tts"]), vram=st.floats(0.5, 17),
       budget=st.floats(4, 24))
def test_policy_properties(loaded, name, type, vram, budget):
    d = decide(loaded, name, type, vram, budget)
    by_name = {m.name: m for m in loaded}
    if name in by_name:
        assert d.action is Action.READY
        return
    if d.action is Action.NEVER:
        assert d.message
        return
    kept = [m for m in loaded if m.name not in d.evict]
    assert sum(m.vram_gb for m in kept) + vram <= budget + 1e-6 or sum(
        m.vram_gb for m in loaded) > budget  # the ledger was already over (measured growth)
    if type in ("llm", "tts"):
        assert all(m.type != type for m in kept)
    if type == "tts":
        assert all(by_name[v].type != "asr" for v in d.evict)
    room = [by_name[v] for v in d.evict if d.reasons[v] == ROOM]
    for victim in room:  # nothing of lower priority stays while a higher one goes
        assert all(PRIORITY[m.type] >= PRIORITY[victim.type] for m in kept)
    assert set(d.wait_for) == {v for v in d.evict if by_name[v].in_use}
    assert (d.action is Action.WAIT) == bool(d.wait_for)


@pytest.mark.parametrize("llm", [LLM4, LLM9])
def test_small_llms_leave_asr_and_tts_loaded(llm):
    assert ask([ASR, TTS], llm).evict == ()
