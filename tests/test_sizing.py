"""llmux.sizing: the size the scheduler counts and the context a model is served at."""

from __future__ import annotations

from llmux.sizing import fit
from llmux.types import VramEstimate


def linear(weights: float, per_1k: float, configured: int | None = 32768):
    calls = []

    def estimate(context):
        calls.append(context)
        ctx = context or configured
        if ctx is None:
            return VramEstimate(weights)
        return VramEstimate(weights + per_1k * ctx / 1024, ctx)

    return estimate, calls


def test_fits_at_its_configured_context():
    estimate, _ = linear(10, 0.1)
    f = fit("m", estimate, 15.1)
    assert (f.gb, f.context, f.fitted, f.source) == (10 + 3.2, 32768, False, "estimate")


def test_the_largest_context_that_fits_in_steps_of_256():
    estimate, calls = linear(10, 0.5)  # 10 + 0.5 x ctx/1024 <= 15.1 -> ctx <= 10444.8
    f = fit("m", estimate, 15.1)
    assert f.fitted and f.context == 10240 and f.configured_context == 32768
    assert f.gb == 10 + 5.0 and len(calls) < 12  # bisected, not scanned


def test_vram_gb_is_the_operators_figure_and_fits_the_context_within_it():
    estimate, _ = linear(4, 0.25)
    f = fit("m", estimate, 15.1, vram_gb=6)  # 4 + 0.25 x ctx/1024 <= 6 -> 8192
    assert (f.gb, f.source, f.context) == (6, "vram_gb", 8192)


def test_vram_gb_never_refuses_an_honest_model():
    estimate, _ = linear(11, 0.03)
    f = fit("m", estimate, 15.1, vram_gb=9)  # weights alone are 11
    assert f.problem is None and f.source == "estimate" and f.context == 32768
    assert "vram_gb 9 is below" in f.warning
    tts, _ = linear(2.7, 0, configured=None)
    f = fit("tts", tts, 15.1, vram_gb=2)
    assert f.problem is None and f.gb == 2.7 and "below" in f.warning


def test_a_model_that_cannot_fit_at_any_context_is_its_own_problem():
    estimate, _ = linear(20, 0.1)
    f = fit("big", estimate, 15.1)
    assert f.problem and "needs 20.40 GiB" in f.problem and "4096 tokens" in f.problem
    assert "15.10 GiB" in f.problem


def test_an_estimate_that_fails_falls_back_to_vram_gb():
    def broken(context):
        raise FileNotFoundError("no config.json in /models/x")

    f = fit("x", broken, 15.1, vram_gb=4)
    assert (f.gb, f.source, f.error) == (4, "vram_gb", "no config.json in /models/x")
    f = fit("x", broken, 15.1)
    assert (f.gb, f.source) == (0.0, "unknown")
