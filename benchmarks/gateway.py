"""1. Gateway cost with the echo runtime: one SSE stream's tokens/s, and non-streaming
requests/s with p50/p99 latency at 1, 16 and 64 concurrent clients — each beside the bare
aiohttp handler of :mod:`benchmarks.bare_server` returning the same bytes, in the same run,
interleaved round by round. Then the ``upstream`` backend's relay: one SSE stream's tokens/s
through a second llmux whose model is the first llmux's (llmux -> llmux -> echo) beside the
first llmux direct, interleaved the same way.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from .harness import (
    AUTH,
    USER_KEY,
    Row,
    Section,
    Server,
    free_port,
    llmux_argv,
    median,
    percentile,
    plugin_installed,
    ratio,
    write_llmux_config,
)

SSE_TARGET = 20_000  # tokens/s of one stream through the gateway
UPSTREAM_TARGET = 0.95  # tokens/s relayed through an upstream model / the upstream direct
PACED_DELAY = 0.001  # s a token: an upstream at <= 1,000 tok/s, 5x a fast vLLM stream
UPSTREAM_KEY_ENV = "LLMUX_BENCH_UPSTREAM_KEY"
SHORT_REPLY = " ".join(f"w{i}" for i in range(16))  # a 16-token answer


@dataclass(frozen=True)
class GatewaySizes:
    stream_tokens: int  # multiple of 100
    stream_rounds: int
    requests: dict  # concurrency -> requests per round
    rounds: int
    paced_tokens: int  # multiple of 100: the stream of the paced upstream model


FULL = GatewaySizes(stream_tokens=20_000, stream_rounds=5,
                    requests={1: 300, 16: 800, 64: 1280}, rounds=3, paced_tokens=2000)
SMOKE = GatewaySizes(stream_tokens=500, stream_rounds=1, requests={1: 10, 16: 32, 64: 64},
                     rounds=1, paced_tokens=200)


def _config(directory: Path, sizes: GatewaySizes) -> Path:
    words = " ".join(f"t{i}" for i in range(100))
    physical = {
        "echo-stream": {"type": "llm", "backend": "echo", "path": "echo", "vram_gb": 0.1,
                        "chat_format": "plain",
                        "options": {"reply": words, "repeat": sizes.stream_tokens // 100}},
        "echo-short": {"type": "llm", "backend": "echo", "path": "echo", "vram_gb": 0.1,
                       "chat_format": "plain", "options": {"reply": SHORT_REPLY}},
        "echo-paced": {"type": "llm", "backend": "echo", "path": "echo", "vram_gb": 0.1,
                       "chat_format": "plain",
                       "options": {"reply": words, "repeat": sizes.paced_tokens // 100,
                                   "token_delay": PACED_DELAY}},
    }
    return write_llmux_config(directory, physical,
                              server={"preload": list(physical), "max_waiting": 256})


def _payload(model: str, stream: bool) -> dict:
    return {"model": model, "stream": stream,
            "messages": [{"role": "user", "content": "benchmark"}]}


async def sse_once(session: aiohttp.ClientSession, url: str, model: str) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    chunks = []
    async with session.post(url, json=_payload(model, True), headers=AUTH) as resp:
        resp.raise_for_status()
        async for chunk in resp.content.iter_any():
            chunks.append(chunk)
    return time.perf_counter() - t0, b"".join(chunks)


def content_frames(raw: bytes) -> int:
    return raw.count(b'"delta":{"content":"') - raw.count(b'"delta":{"content":""')


async def load_run(session: aiohttp.ClientSession, url: str, model: str, concurrency: int,
                   total: int) -> tuple[float, list[float], int]:
    """``total`` non-streaming requests from ``concurrency`` workers: (wall s, latencies,
    failures)."""
    payload = _payload(model, False)
    latencies: list[float] = []
    failures = 0
    remaining = total

    async def worker():
        nonlocal remaining, failures
        while remaining > 0:
            remaining -= 1
            t0 = time.perf_counter()
            async with session.post(url, json=payload, headers=AUTH) as resp:
                await resp.read()
                if resp.status != 200:
                    failures += 1
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, latencies, failures


async def sse_rounds(session: aiohttp.ClientSession, targets: dict, tokens: int, rounds: int
                     ) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Each target (name -> (url, model)) streams its ``tokens`` once a round, the order
    alternating; round 0 warms up. The median tokens/s per target, each round's seconds."""
    seconds: dict[str, list[float]] = {k: [] for k in targets}
    for r in range(rounds + 1):
        order = list(targets) if r % 2 else list(reversed(targets))
        for name in order:
            url, model = targets[name]
            took, raw = await sse_once(session, url, model)
            if content_frames(raw) != tokens:
                raise RuntimeError(f"{name}: incomplete stream")
            if r:
                seconds[name].append(took)
    return {k: tokens / median(v) for k, v in seconds.items()}, seconds


async def upstream_rows(session: aiohttp.ClientSession, work: Path, sizes: GatewaySizes,
                        upstream: Server, section: Section) -> None:
    """A second llmux (the relay) whose models are the first llmux's, on the ``upstream``
    backend: one stream through the relay beside the same stream from the first llmux
    direct. ``echo-paced`` streams at most 1,000 tok/s, several times what an engine streams
    one answer of a large model at: the relay must keep its pace (the target).
    ``echo-stream`` is the echo runtime unpaced: the relay's own ceiling, where it costs what
    a second gateway hop costs (no target: both llmux processes share the same cores)."""
    names = {"echo-paced": ("SSE tokens/s via upstream llmux", sizes.paced_tokens),
             "echo-stream": ("SSE tokens/s via upstream llmux, unpaced", sizes.stream_tokens)}
    if not plugin_installed("upstream"):
        for metric, _ in names.values():
            section.rows.append(Row("gateway", metric, None, note="llmux-upstream not installed"))
        return
    physical = {name: {"type": "llm", "backend": "upstream", "path": "remote",
                       "chat_format": "plain",
                       "options": {"base_url": upstream.url + "/v1", "model": name,
                                   "api_key_env": UPSTREAM_KEY_ENV, "max_concurrency": 4}}
                for name in names}
    config = write_llmux_config(work / "gateway-relay-config", physical,
                                server={"preload": list(physical)})
    port = free_port()
    relay = Server("llmux-relay", llmux_argv(config, port), port, work,
                   env={UPSTREAM_KEY_ENV: USER_KEY})
    chat = "/v1/chat/completions"
    section.data["upstream"] = {}
    try:
        relay.start()
        await relay.ready(session)
        for name, (metric, tokens) in names.items():
            targets = {"relay": (relay.url + chat, name), "direct": (upstream.url + chat, name)}
            tps, seconds = await sse_rounds(session, targets, tokens, sizes.stream_rounds)
            section.data["upstream"][name] = {"tokens": tokens, "seconds": seconds,
                                              "tokens_per_s": tps}
            share = ratio(tps["relay"], tps["direct"])
            paced = name == "echo-paced"
            section.rows.append(Row(
                "gateway", metric, tps["relay"], tps["direct"], "the upstream llmux direct",
                "tok/s", share, f">= {UPSTREAM_TARGET}x" if paced else "",
                (share is not None and share >= UPSTREAM_TARGET) if paced else None))
        section.data["upstream"]["relay_rss_mb"] = relay.rss_mb()
    finally:
        relay.stop()


async def run(work: Path, smoke: bool) -> Section:
    sizes = SMOKE if smoke else FULL
    section = Section("gateway")
    config = _config(work / "gateway-config", sizes)
    port = free_port()
    llmux = Server("llmux-gateway", llmux_argv(config, port), port, work)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600)
    bare = None
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            llmux.start()
            await llmux.ready(session)
            chat = llmux.url + "/v1/chat/completions"
            # Capture what llmux answers; the bare server returns exactly these bytes.
            async with session.post(chat, json=_payload("echo-short", False),
                                    headers=AUTH) as resp:
                json_body = await resp.read()
            _, sse_body = await sse_once(session, chat, "echo-stream")
            frames = content_frames(sse_body)
            if frames != sizes.stream_tokens:
                raise RuntimeError(f"llmux streamed {frames} content frames, expected "
                                   f"{sizes.stream_tokens}")
            (work / "bare.json").write_bytes(json_body)
            (work / "bare.sse").write_bytes(sse_body)
            port = free_port()
            bare = Server("bare-aiohttp", [sys.executable, "-m", "benchmarks.bare_server",
                                           str(port), str(work / "bare.json"),
                                           str(work / "bare.sse")], port, work)
            bare.start()
            await bare.ready(session)
            bare_chat = bare.url + "/v1/chat/completions"

            # -- one SSE stream: llmux, bare per-frame, bare one-write, interleaved
            targets = {"llmux": (chat, "echo-stream"),
                       "bare_frame": (bare_chat + "?write=frame", "echo-stream"),
                       "bare_all": (bare_chat + "?write=all", "echo-stream")}
            tps, seconds = await sse_rounds(session, targets, sizes.stream_tokens,
                                            sizes.stream_rounds)
            section.data["sse"] = {"tokens": sizes.stream_tokens, "seconds": seconds,
                                   "tokens_per_s": tps, "bytes": len(sse_body)}
            section.rows.append(Row(
                "gateway", "SSE tokens/s, one stream", tps["llmux"], tps["bare_frame"],
                "bare aiohttp, a write per frame", "tok/s", ratio(tps["llmux"], tps["bare_frame"]),
                f">= {SSE_TARGET:,}", tps["llmux"] >= SSE_TARGET))
            section.rows.append(Row(
                "gateway", "SSE tokens/s vs one-write ceiling", tps["llmux"], tps["bare_all"],
                "bare aiohttp, one write", "tok/s", ratio(tps["llmux"], tps["bare_all"])))

            # -- non-streaming load at 1/16/64 concurrent
            section.data["requests"] = {}
            for conc, total in sizes.requests.items():
                await load_run(session, chat, "echo-short", conc, min(total, 2 * conc))  # warm
                await load_run(session, bare_chat, "echo-short", conc, min(total, 2 * conc))
                got = {"llmux": {"rps": [], "lat": [], "fail": 0},
                       "bare": {"rps": [], "lat": [], "fail": 0}}
                for r in range(sizes.rounds):
                    order = [("llmux", chat), ("bare", bare_chat)]
                    for name, url in (order if r % 2 == 0 else order[::-1]):
                        wall, lat, fail = await load_run(session, url, "echo-short", conc, total)
                        got[name]["rps"].append(total / wall)
                        got[name]["lat"] += lat
                        got[name]["fail"] += fail
                summary = {name: {"requests_per_s": median(g["rps"]),
                                  "p50_ms": percentile(g["lat"], 50) * 1000,
                                  "p99_ms": percentile(g["lat"], 99) * 1000,
                                  "failures": g["fail"], "rounds_rps": g["rps"]}
                           for name, g in got.items()}
                section.data["requests"][conc] = summary
                lm, br = summary["llmux"], summary["bare"]
                note = f"{lm['failures']} failed" if lm["failures"] else ""
                section.rows.append(Row(
                    "gateway", f"req/s, {conc} concurrent", lm["requests_per_s"],
                    br["requests_per_s"], "bare aiohttp", "req/s",
                    ratio(lm["requests_per_s"], br["requests_per_s"]), note=note))
                for p in ("p50_ms", "p99_ms"):
                    section.rows.append(Row("gateway", f"{p[:3]} latency, {conc} concurrent",
                                            lm[p], br[p], "bare aiohttp", "ms",
                                            ratio(lm[p], br[p])))
            section.data["llmux_rss_mb"] = llmux.rss_mb()
            if bare is not None:
                bare.stop()  # off the CPUs while the relay runs
            await upstream_rows(session, work, sizes, llmux, section)
    finally:
        llmux.stop()
        if bare is not None:
            bare.stop()
    return section
