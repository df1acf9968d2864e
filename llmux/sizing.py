"""One true size per model: the plugin's estimate at the context that fits the budget.

A model's size is what it takes at its context, read from its files by the plugin
(``estimate_vram``). When it does not fit the usable budget at its configured context,
llmux fits the context: the largest multiple of :data:`GRANULARITY` tokens (at least
:data:`MIN_CONTEXT`) whose estimate fits, as llama.cpp and Ollama fit a context to free
memory. ``vram_gb`` in models.yaml is the operator's figure: the VRAM the model may take
(its context is fitted within it) and the size the scheduler counts; it never refuses an
honest model: when the model needs more even at the smallest context, the true size wins
and a warning says so. A model that cannot fit the usable budget at any context is that
model's problem (``Fit.problem``): serve still starts, its requests get a 503 saying why.

Pure logic over a callable, so tests drive it without plugins; :func:`fit_model` binds it
to a backend.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from .types import PhysicalModel, VramEstimate

log = logging.getLogger("llmux.sizing")

GRANULARITY = 256  # fitted contexts are multiples of this (llama.cpp pads n_ctx to 256)
MIN_CONTEXT = 4096  # below this a chat model is not worth serving (llama.cpp's fit floor)
_EPS = 1e-9


@dataclass(frozen=True)
class Fit:
    """How big one physical model is on this budget, and at what context."""

    name: str
    gb: float  # what the scheduler counts (0.0 when unknown)
    source: str  # "estimate" | "vram_gb" | "unknown"
    estimate: VramEstimate | None = None  # at ``context``
    configured_context: int | None = None
    context: int | None = None  # fitted; == configured_context when it fits
    problem: str | None = None  # cannot be served on this budget: why (a 503 for clients)
    error: str | None = None  # the estimate failed (files missing, ...): why
    warning: str | None = None  # e.g. vram_gb below what the model needs

    @property
    def fitted(self) -> bool:
        return (self.context is not None and self.configured_context is not None
                and self.context < self.configured_context)

    def to_json(self) -> dict:
        return {
            "vram_gb": round(self.gb, 2), "source": self.source,
            "context": self.context, "configured_context": self.configured_context,
            "context_fitted": self.fitted, "problem": self.problem, "error": self.error,
            "warning": self.warning,
            "parts": {k: round(v, 2) for k, v in (self.estimate.parts if self.estimate else {}).items()},
        }

    def describe(self) -> str:
        text = f"{self.gb:.2f} GiB ({self.source})"
        if self.context is not None:
            text += f" at {self.context} tokens"
            if self.fitted:
                text += f" (fitted from {self.configured_context})"
        return text


Estimator = Callable[[int | None], VramEstimate | None]


def fit(name: str, estimate: Estimator, usable_gb: float | None,
        vram_gb: float | None = None) -> Fit:
    """Size ``name`` with ``estimate(context)`` on ``usable_gb`` (None: no known budget)."""
    try:
        full = estimate(None)
    except Exception as exc:  # files missing on this machine, unreadable header, ...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return _without_estimate(name, vram_gb, usable_gb, error=reason)
    if full is None:
        return _without_estimate(name, vram_gb, usable_gb)
    configured = full.context
    target = usable_gb if vram_gb is None or usable_gb is None else min(vram_gb, usable_gb)
    if target is None or full.gb <= target + _EPS:
        return _result(name, full, configured, vram_gb)
    if configured is None:  # no context to trade
        if usable_gb is not None and full.gb <= usable_gb + _EPS:  # over vram_gb only
            return _replace(_result(name, full, configured, None),
                            warning=_below(name, vram_gb, full))
        return _too_big(name, full, configured, vram_gb, usable_gb, target)
    estimate = _quiet(name, estimate)  # a later failure: that context does not fit
    floor = min(MIN_CONTEXT, configured)
    best = _largest_fitting(estimate, floor, configured, target)
    if best is None and target < (usable_gb or target):
        # vram_gb is below what the model needs: the true size wins, fitted to the budget
        best = _largest_fitting(estimate, floor, configured, usable_gb)
        if best is not None:
            return _replace(_result(name, best, configured, None),
                            warning=_below(name, vram_gb, best))
    if best is None:
        smallest = estimate(floor) or full
        return _too_big(name, smallest, configured, vram_gb, usable_gb, target)
    result = _result(name, best, configured, vram_gb)
    log.info("%s: %s does not fit %.2f GiB at %d tokens; context fitted to %d tokens (%s)",
             name, f"{full.gb:.2f} GiB", target, configured, best.context, best.describe())
    return result


def fit_model(backend, model: PhysicalModel, usable_gb: float | None) -> Fit:
    """:func:`fit` with ``backend.estimate_vram`` (a :class:`llmux.runtime.Backend`)."""
    return fit(model.name, lambda ctx: backend.estimate_vram(model, ctx), usable_gb,
               model.vram_gb)


def _quiet(name: str, estimate: Estimator) -> Estimator:
    def quiet(context: int | None) -> VramEstimate | None:
        try:
            return estimate(context)
        except Exception:  # noqa: BLE001  (logged; the search takes it as "does not fit")
            log.warning("%s: estimating %s tokens of context raised", name, context,
                        exc_info=True)
            return None
    return quiet


def _largest_fitting(estimate: Estimator, low: int, high: int,
                     target: float) -> VramEstimate | None:
    """The estimate at the largest context in [low, high] (multiples of GRANULARITY, and
    ``high`` itself) that fits ``target``; None when not even ``low`` fits."""
    first = estimate(low)
    if first is None or first.gb > target + _EPS:
        return None
    best = first
    lo, hi = low // GRANULARITY, high // GRANULARITY  # in steps
    while lo < hi:  # the estimate grows with the context: bisect
        mid = (lo + hi + 1) // 2
        probe = estimate(mid * GRANULARITY)
        if probe is not None and probe.gb <= target + _EPS:
            best, lo = probe, mid
        else:
            hi = mid - 1
    return best


def _below(name: str, vram_gb: float | None, est: VramEstimate) -> str:
    at = f" even at {est.context} tokens" if est.context else ""
    warning = (f"vram_gb {vram_gb:g} is below the {est.gb:.2f} GiB {name} needs{at}; "
               f"counting {est.gb:.2f} GiB")
    log.warning("%s", warning)
    return warning


def _result(name: str, est: VramEstimate, configured: int | None,
            vram_gb: float | None) -> Fit:
    if vram_gb is not None:
        return Fit(name, vram_gb, "vram_gb", est, configured, est.context)
    return Fit(name, est.gb, "estimate", est, configured, est.context)


def _too_big(name, est, configured, vram_gb, usable_gb, target) -> Fit:
    at = f" even at {est.context} tokens of context" if est.context else ""
    problem = (f"model {name!r} needs {est.gb:.2f} GiB of VRAM{at} ({est.describe()}), but "
               f"the usable budget is {usable_gb:.2f} GiB: it cannot be served on this GPU "
               "(use a smaller or quantised checkpoint, or raise vram.budget_gb on a bigger card)")
    log.error("%s", problem)
    return Fit(name, est.gb, "estimate", est, configured, est.context, problem=problem)


def _without_estimate(name, vram_gb, usable_gb, error: str | None = None) -> Fit:
    if vram_gb is None:
        return Fit(name, 0.0, "unknown", error=error,
                   warning=None if error else f"{name}: no estimate and no vram_gb; counted as 0")
    problem = None
    if usable_gb is not None and vram_gb > usable_gb + _EPS:
        problem = (f"model {name!r} needs {vram_gb:g} GiB of VRAM (vram_gb) but the usable "
                   f"budget is {usable_gb:.2f} GiB: it cannot be served on this GPU")
    return Fit(name, vram_gb, "vram_gb", error=error, problem=problem)


def _replace(f: Fit, **changes) -> Fit:
    from dataclasses import replace

    return replace(f, **changes)
