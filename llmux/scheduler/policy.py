"""The scheduling policy: which models to evict so a requested model can load.

A pure function of its arguments: no clock, no GPU, no I/O. The manager calls :func:`decide`
under its lock and carries the decision out; tests drive it directly.

The rules (requirements VRAM-001…005, read together with TST-018):

1. No idle timeout: a model stays loaded until a load needs its room.
2. A model that is already loaded is ready; a model that fits the free budget loads alongside.
3. At most one LLM and at most one TTS model are loaded: a new one replaces the current one
   of its type even when both would fit.
4. When room is still missing, evict by priority, lowest first: LLM, then TTS, then ASR.
   - an LLM load may evict TTS and then ASR;
   - a TTS load never evicts the ASR model (the LLM goes instead; if that is not enough the
     request fails clearly);
   - an ASR load evicts the LLM, then TTS (then another ASR model, as a last resort).
5. A model in use is never evicted: the decision says which leases the load waits for.
   The plan does not depend on what is in use, so waiting never changes who is evicted.
6. A model larger than the whole usable budget can never fit: an error, not a wait.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable, Mapping

# Lower number = evicted first.
PRIORITY: Mapping[str, int] = {"llm": 0, "tts": 1, "asr": 2}
SINGLETON_TYPES = frozenset({"llm", "tts"})

# Which types a load of each type may evict to make room, in eviction order.
EVICTABLE_FOR: Mapping[str, tuple[str, ...]] = {
    "llm": ("llm", "tts", "asr"),
    "tts": ("llm", "tts"),
    "asr": ("llm", "tts", "asr"),
}

# Why a model is evicted.
REPLACE = "replace"  # one LLM / one TTS at a time
ROOM = "room"  # not enough VRAM otherwise

_EPSILON = 1e-9


@dataclass(frozen=True)
class LoadedModel:
    """What the policy needs to know about a loaded model."""

    name: str
    type: str
    vram_gb: float
    in_use: int = 0


class Action(Enum):
    READY = "ready"  # already loaded
    LOAD = "load"  # evict ``evict`` (maybe nothing), then load
    WAIT = "wait"  # the plan must evict models in use: wait for their leases
    NEVER = "never"  # cannot fit: fail the request


@dataclass(frozen=True)
class Decision:
    action: Action
    evict: tuple[str, ...] = ()  # in eviction order
    reasons: Mapping[str, str] = field(default_factory=dict)  # victim -> REPLACE | ROOM
    wait_for: tuple[str, ...] = ()  # victims still in use (WAIT only)
    message: str = ""  # why (NEVER): ready to show a client


def usable_budget(budget_gb: float, reserve_gb: float) -> float:
    return budget_gb - reserve_gb


def decide(
    loaded: Iterable[LoadedModel],
    name: str,
    type: str,
    vram_gb: float,
    budget_gb: float,
) -> Decision:
    """Decide how to make ``name`` (of ``type``, needing ``vram_gb``) resident.

    ``budget_gb`` is the usable budget (after the reserve).
    """
    loaded = list(loaded)
    if any(m.name == name for m in loaded):
        return Decision(Action.READY)
    if vram_gb > budget_gb + _EPSILON:
        return Decision(
            Action.NEVER,
            message=(
                f"model {name!r} needs {vram_gb:g} GB of VRAM but the usable budget is "
                f"{budget_gb:g} GB: it can never be loaded (raise vram.budget_gb, lower "
                f"vram.reserve_gb, or pick a smaller model)"
            ),
        )

    evict: list[str] = []
    reasons: dict[str, str] = {}
    if type in SINGLETON_TYPES:
        for m in loaded:
            if m.type == type:
                evict.append(m.name)
                reasons[m.name] = REPLACE

    def free() -> float:
        return budget_gb - sum(m.vram_gb for m in loaded if m.name not in reasons)

    if vram_gb > free() + _EPSILON:
        for victim_type in EVICTABLE_FOR[type]:
            # Within one type, the largest first: fewest evictions.
            same = sorted(
                (m for m in loaded if m.type == victim_type and m.name not in reasons),
                key=lambda m: (-m.vram_gb, m.name),
            )
            for m in same:
                if vram_gb <= free() + _EPSILON:
                    break
                evict.append(m.name)
                reasons[m.name] = ROOM
        if vram_gb > free() + _EPSILON:
            kept = [m for m in loaded if m.name not in reasons]
            protected = ", ".join(f"{m.name} ({m.type}, {m.vram_gb:g} GB)" for m in kept)
            return Decision(
                Action.NEVER,
                message=(
                    f"cannot load {type} model {name!r} ({vram_gb:g} GB): only "
                    f"{free():g} GB would be free, and a {type} load never evicts "
                    f"{protected} (higher priority); unload it via the admin API first"
                ),
            )

    busy = tuple(m.name for m in loaded if m.name in reasons and m.in_use > 0)
    if busy:
        return Decision(Action.WAIT, tuple(evict), reasons, wait_for=busy)
    return Decision(Action.LOAD, tuple(evict), reasons)


def evictable_after_oom(loaded: Iterable[LoadedModel], type: str) -> tuple[str, ...]:
    """What an out-of-memory during a load of ``type`` may still evict: every idle model the
    priority rule lets that load evict, lowest priority first."""
    allowed = EVICTABLE_FOR[type]
    idle = [m for m in loaded if m.type in allowed and m.in_use == 0]
    idle.sort(key=lambda m: (PRIORITY[m.type], -m.vram_gb, m.name))
    return tuple(m.name for m in idle)
