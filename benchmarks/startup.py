"""4. Start-up and memory: seconds from ``llmux serve`` (the demo config, every installed
plugin discovered) to a 200 on ``/health``, beside the bare aiohttp server; RSS of the idle
server; RSS with a model loaded, after unloading it, and after more load/unload cycles
(growth from the first cycle to the last would be a leak).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp

from .gguf_model import SMOKE_SHAPE, Shape, build_gguf
from .harness import (
    ADMIN,
    REPO,
    Row,
    Section,
    Server,
    free_port,
    llmux_argv,
    median,
    plugin_installed,
    ratio,
    write_llmux_config,
)

STARTUP_TARGET_S = 1.5
IDLE_RSS_TARGET_MB = 120.0
SETTLE_S = 0.5  # after ready or unload, before reading RSS


async def _start_once(name: str, argv: list[str], port: int, work: Path, session,
                      health: str = "/health") -> tuple[float, float | None]:
    server = Server(name, argv, port, work, health=health)
    server.start()
    try:
        seconds = await server.ready(session, timeout=60, interval=0.002)
        await asyncio.sleep(SETTLE_S)
        return seconds, server.rss_mb()
    finally:
        server.stop()


async def run(work: Path, smoke: bool) -> Section:
    section = Section("startup")
    starts, cycles = (1, 2) if smoke else (5, 6)
    for name, content in (("bare.json", b"{}"), ("bare.sse", b"data: [DONE]\n\n")):
        if not (work / name).exists():  # the gateway section may have left the real ones
            (work / name).write_bytes(content)
    llmux_s, llmux_rss, bare_s, bare_rss = [], [], [], []
    async with aiohttp.ClientSession() as session:
        for _ in range(starts):  # interleaved: llmux, bare, llmux, bare, ...
            port = free_port()
            s, rss = await _start_once("llmux-startup",
                                       llmux_argv(REPO / "config" / "demo", port), port, work,
                                       session)
            llmux_s.append(s)
            llmux_rss.append(rss)
            port = free_port()
            s, rss = await _start_once("bare-startup", [
                sys.executable, "-m", "benchmarks.bare_server", str(port),
                str(work / "bare.json"), str(work / "bare.sse")], port, work, session)
            bare_s.append(s)
            bare_rss.append(rss)
        section.data.update(startup_s=llmux_s, idle_rss_mb=llmux_rss, bare_startup_s=bare_s,
                            bare_idle_rss_mb=bare_rss)
        up, idle = median(llmux_s), median(llmux_rss)
        section.rows.append(Row("startup", "llmux serve -> 200 on /health (demo config)", up,
                                median(bare_s), "bare aiohttp server", "s",
                                ratio(up, median(bare_s)), f"<= {STARTUP_TARGET_S} s",
                                up <= STARTUP_TARGET_S))
        section.rows.append(Row("startup", "RSS idle", idle, median(bare_rss),
                                "bare aiohttp server", "MB", ratio(idle, median(bare_rss)),
                                f"<= {IDLE_RSS_TARGET_MB:.0f} MB", idle <= IDLE_RSS_TARGET_MB))
        await _cycles(section, work, session, cycles, smoke)
    return section


async def _cycles(section: Section, work: Path, session, cycles: int, smoke: bool) -> None:
    """Load and unload one model ``cycles`` times through the admin API; RSS each step."""
    if plugin_installed("llamacpp"):
        gguf = work / "llama-bench" / "bench.gguf"
        if not gguf.exists():
            build_gguf(gguf, SMOKE_SHAPE if smoke else Shape())
        model = {"type": "llm", "backend": "llamacpp", "path": "llama-bench", "vram_gb": 0.5,
                 "chat_format": "plain", "options": {"model_file": "bench.gguf",
                                                     "n_ctx": 512 if smoke else 2048,
                                                     "n_threads": 1}}
        what = f"llamacpp GGUF, {gguf.stat().st_size / 1e6:.0f} MB"
    else:
        model = {"type": "llm", "backend": "echo", "path": "echo", "vram_gb": 0.5,
                 "chat_format": "plain"}
        what = "echo (the llamacpp plugin is not installed)"
    config = write_llmux_config(work / "rss-config", {"rss-model": model}, models_dir=str(work))
    port = free_port()
    server = Server("llmux-rss", llmux_argv(config, port), port, work)
    server.start()
    steps = []
    try:
        await server.ready(session)
        await asyncio.sleep(SETTLE_S)
        idle = server.rss_mb()
        base = f"{server.url}/v1/admin/models/rss-model"
        for i in range(cycles):
            async with session.post(base + "/load", headers=ADMIN) as resp:
                resp.raise_for_status()
            # One request, so the model has really run (buffers, caches) before unload.
            body = {"model": "rss-model", "max_tokens": 16, "temperature": 0,
                    "messages": [{"role": "user", "content": f"cycle {i}"}]}
            async with session.post(server.url + "/v1/chat/completions", json=body,
                                    headers=ADMIN) as resp:
                resp.raise_for_status()
            loaded = server.rss_mb()
            async with session.post(base + "/unload", headers=ADMIN) as resp:
                resp.raise_for_status()
            await asyncio.sleep(SETTLE_S)
            steps.append({"loaded_mb": loaded, "unloaded_mb": server.rss_mb()})
    finally:
        server.stop()
    section.data["cycles"] = {"model": what, "idle_mb": idle, "steps": steps}
    first, last = steps[0]["unloaded_mb"], steps[-1]["unloaded_mb"]
    # The first cycles may keep memory for good (allocator arenas, caches that fill once);
    # a leak is what keeps growing after that: from the second cycle to the last.
    settled = steps[min(1, len(steps) - 1)]["unloaded_mb"]
    section.rows.append(Row("startup", "RSS with the model loaded", steps[0]["loaded_mb"], idle,
                            "idle", "MB", ratio(steps[0]["loaded_mb"], idle), note=what))
    section.rows.append(Row("startup", "RSS after load + unload", first, idle, "idle", "MB",
                            ratio(first, idle),
                            note=f"{first - idle:+.1f} MB (libraries stay imported)"))
    section.rows.append(Row("startup", f"RSS growth, cycle 2 -> {len(steps)}", last - settled,
                            unit="MB", target="~0 (no leak)", ok=(last - settled) < 5.0,
                            note="after each unload: "
                                 + ", ".join(f"{s['unloaded_mb']:.0f}" for s in steps)))
