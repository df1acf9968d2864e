"""Which models can stay resident together on this budget, told with the true sizes.

For every LLM: start from the speech models resident (every ASR model and the largest TTS
model, as after a voice conversation), load the LLM through the real policy
(:func:`llmux.scheduler.policy.decide`) and report what stays. This is what requirements
TST-016/017 (an LLM beside ASR and TTS) and TST-018 (a large LLM evicts them) ask, and
TST-019 (one LLM replaces another) holds for every LLM that fits alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .scheduler.policy import Action, LoadedModel, decide
from .types import PhysicalModel


@dataclass(frozen=True)
class Residency:
    llm: str
    llm_gb: float
    before: tuple[str, ...]  # the speech models resident before the load
    kept: tuple[str, ...]  # of those, what stays
    evicted: tuple[str, ...]
    fits_alone: bool
    message: str = ""

    @property
    def all_kept(self) -> bool:
        return self.fits_alone and not self.evicted


def speech_set(physical: Mapping[str, PhysicalModel], sizes: Mapping[str, float]) -> list[str]:
    """Every ASR model and the largest TTS model: the voice set an LLM should sit beside."""
    asr = [n for n, m in physical.items() if m.type == "asr"]
    tts = sorted((n for n, m in physical.items() if m.type == "tts"),
                 key=lambda n: (-sizes.get(n, 0.0), n))
    return asr + tts[:1]


def residency(physical: Mapping[str, PhysicalModel], sizes: Mapping[str, float],
              usable_gb: float) -> list[Residency]:
    speech = speech_set(physical, sizes)
    out = []
    for name, model in physical.items():
        if model.type != "llm":
            continue
        loaded, used = [], 0.0
        for s in speech:  # as many of the voice set as fit (ASR first, by priority)
            if used + sizes.get(s, 0.0) <= usable_gb:
                loaded.append(LoadedModel(s, physical[s].type, sizes.get(s, 0.0)))
                used += sizes.get(s, 0.0)
        d = decide(loaded, name, "llm", sizes.get(name, 0.0), usable_gb)
        before = tuple(m.name for m in loaded)
        if d.action is Action.NEVER:
            out.append(Residency(name, sizes.get(name, 0.0), before, (), before, False,
                                 d.message))
            continue
        kept = tuple(n for n in before if n not in d.evict)
        out.append(Residency(name, sizes.get(name, 0.0), before, kept, tuple(d.evict), True))
    return out


def describe(r: Residency, sizes: Mapping[str, float], usable_gb: float) -> str:
    if not r.fits_alone:
        return f"{r.llm}: does not fit ({r.llm_gb:.2f} GiB > {usable_gb:.2f} usable)"
    parts = " + ".join(f"{n} {sizes.get(n, 0.0):.2f}" for n in (r.llm, *r.kept))
    total = r.llm_gb + sum(sizes.get(n, 0.0) for n in r.kept)
    text = f"{r.llm}: resident with {', '.join(r.kept) or 'nothing else'} ({parts} = {total:.2f} GiB"
    text += f" of {usable_gb:.2f})"
    if r.evicted:
        need = r.llm_gb + sum(sizes.get(n, 0.0) for n in r.before)
        text += (f"; evicts {', '.join(r.evicted)} (all together would need {need:.2f} GiB)")
    return text
