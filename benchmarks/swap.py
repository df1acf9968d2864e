"""3. Swap cost: request -> first token for a model that must evict another, minus the
runtimes' own unload + load time. Two echo models that cannot both fit the VRAM budget, with
``unload_seconds``/``load_seconds``: every request alternates between them, so each one
evicts the other. The same model asked again (no swap) gives the no-swap TTFT beside it.
"""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp

from .harness import (
    AUTH,
    Row,
    Section,
    Server,
    free_port,
    llmux_argv,
    median,
    ratio,
    write_llmux_config,
)

OVERHEAD_TARGET = 0.05  # swap overhead as a fraction of the runtimes' own unload + load


async def ttft(session, url: str, model: str) -> float:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    t0 = time.perf_counter()
    async with session.post(url + "/v1/chat/completions", json=body, headers=AUTH) as resp:
        resp.raise_for_status()
        async for line in resp.content:
            if b'"content":"' in line and b'"content":""' not in line:
                first = time.perf_counter() - t0
                await resp.read()
                return first
    raise RuntimeError(f"{model}: no content")


async def run(work: Path, smoke: bool) -> Section:
    section = Section("swap")
    load_s, unload_s, rounds = (0.1, 0.05, 2) if smoke else (1.0, 0.5, 6)
    own = load_s + unload_s
    physical = {
        name: {"type": "llm", "backend": "echo", "path": name, "vram_gb": 10,
               "chat_format": "plain",
               "options": {"load_seconds": load_s, "unload_seconds": unload_s,
                           "reply": "swapped in"}}
        for name in ("swap-a", "swap-b")
    }
    config = write_llmux_config(work / "swap-config", physical, budget_gb=16, reserve_gb=0.5,
                                server={"preload": ["swap-b"]})
    port = free_port()
    server = Server("llmux-swap", llmux_argv(config, port), port, work)
    swaps: list[float] = []
    warm: list[float] = []
    try:
        async with aiohttp.ClientSession() as session:
            server.start()
            await server.ready(session)
            for i in range(rounds):
                model = ("swap-a", "swap-b")[i % 2]  # swap-b is loaded: swap-a evicts it
                swaps.append(await ttft(session, server.url, model))
                warm.append(await ttft(session, server.url, model))
    finally:
        server.stop()
    swap_s, warm_s = median(swaps), median(warm)
    overhead = swap_s - own
    section.data = {"load_seconds": load_s, "unload_seconds": unload_s, "swap_ttft_s": swaps,
                    "no_swap_ttft_s": warm, "overhead_s": overhead,
                    "overhead_fraction": overhead / own}
    section.rows.append(Row(
        "swap", "TTFT with a swap", swap_s * 1000, own * 1000,
        "the runtimes' own unload + load", "ms", ratio(swap_s, own),
        f"overhead <= {OVERHEAD_TARGET:.0%}", overhead / own <= OVERHEAD_TARGET,
        f"overhead {overhead * 1000:+.1f} ms ({overhead / own:+.1%})"))
    section.rows.append(Row("swap", "TTFT without a swap (same model again)", warm_s * 1000,
                            unit="ms"))
    return section
