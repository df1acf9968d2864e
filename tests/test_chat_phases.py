"""Where time to first token goes is visible to an operator: every chat request adds its
phases (parse, admission, runtime, and for a stream first_write) to
``llmux_chat_phase_seconds`` on /metrics, and they add up to no more than the request took."""

from __future__ import annotations

import time

from llmux.app import create_app
from llmux.testing import summary_totals

from .conftest import AUTH

STREAM_PHASES = ("parse", "admission", "runtime", "first_write")


def _phases(text: str, model: str) -> dict[str, tuple[float, float]]:
    return summary_totals(text, "llmux_chat_phase_seconds", "phase", model=model)


async def test_each_chat_request_reports_its_phases(aiohttp_client, demo_config, builtin_pm):
    client = await aiohttp_client(create_app(demo_config, builtin_pm))
    model = next(iter(v for v in demo_config.virtual.values() if v.type == "llm")).name
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": 8}
    t0 = time.perf_counter()
    resp = await client.post("/v1/chat/completions", headers=AUTH,
                             json={**body, "stream": True})
    assert resp.status == 200
    await resp.read()
    took = time.perf_counter() - t0
    phases = _phases(await (await client.get("/metrics")).text(), model)
    assert set(phases) == set(STREAM_PHASES)
    assert all(count == 1 for _, count in phases.values())
    assert 0 <= sum(total for total, _ in phases.values()) <= took

    resp = await client.post("/v1/chat/completions", headers=AUTH, json=body)
    assert resp.status == 200
    phases = _phases(await (await client.get("/metrics")).text(), model)
    # A non-streamed answer is sent whole: no first_write of its own.
    assert {p: c for p, (_, c) in phases.items()} == {
        "parse": 2, "admission": 2, "runtime": 2, "first_write": 1}
