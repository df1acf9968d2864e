"""2. llama.cpp the same GGUF, prompt and token count four ways, interleaved run by run:

- ``llmux``: through ``llmux serve`` and the llamacpp plugin, over HTTP (SSE);
- ``direct``: ``llama_cpp.Llama.create_chat_completion(stream=True)`` in a script;
- ``floor``: a ``Llama.generate`` loop in a script over the same prompt tokens (no template,
  no detokenizing, no chunk dicts): the least any Python caller can pay;
- ``llama_server``: llama-cpp-python's own OpenAI server (``python -m llama_cpp.server``).

Time to first token and decode tokens/s (medians over the runs), then 16 concurrent streams
against 16 direct requests one after another. Greedy decoding on a random-weight GGUF whose
output matrix never picks EOS, so every run decodes exactly ``max_tokens`` tokens.

Every way runs as its users run it: each in a process of its own (``direct`` and ``floor``
in :mod:`benchmarks.llama_worker`, llama.cpp called from its main thread), all with the same
``n_threads`` (every core unless ``LLMUX_BENCH_THREADS`` says otherwise) and the caller's
environment without any OpenMP variable, so libgomp runs with its defaults everywhere. The
section reports the settings each process actually started with (read from
``/proc/PID/environ``), and where llmux's time to first token goes (its
``llmux_chat_phase_seconds`` metric beside the model's own work, measured in the worker).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from llmux import openmp
from llmux.testing import summary_totals

from .gguf_model import DECODE_SHAPE, SMOKE_SHAPE, Shape, build_gguf
from .harness import (
    AUTH,
    REPO,
    Row,
    Section,
    Server,
    backend_option_names,
    free_port,
    llmux_argv,
    median,
    plugin_installed,
    ratio,
    write_llmux_config,
)
from .llama_worker import (
    Worker,
    library_env,
    messages,
    process_env,
    result,
)

DECODE_TARGET = 0.97  # llmux / direct decode tokens/s
TTFT_TARGET_MS = 5.0  # llmux TTFT minus direct TTFT
CONCURRENT_TARGET = 0.95  # 16 concurrent through llmux / direct sequential throughput
PROMPT = "Tell me a story about a small robot and a big cat, in three short paragraphs."
# Before each measured request: the previous way's process may still be working when its
# client has the last token (llmux saves the answer's state after the response; every
# OpenMP runtime spins a few ms after its last parallel region), and that work would land
# on the next way's first token, whichever way that is.
SETTLE_S = 0.05


@dataclass(frozen=True)
class Sizes:
    shape: Shape
    runs: int
    max_tokens: int
    streams: int
    stream_tokens: int
    concurrent_rounds: int


FULL = Sizes(DECODE_SHAPE, runs=int(os.environ.get("LLMUX_BENCH_RUNS", "7")), max_tokens=128,
             streams=16, stream_tokens=64, concurrent_rounds=3)
SMOKE = Sizes(SMOKE_SHAPE, runs=1, max_tokens=8, streams=4, stream_tokens=4,
              concurrent_rounds=1)
THREADS = int(os.environ.get("LLMUX_BENCH_THREADS", "0")) or os.cpu_count() or 1


@dataclass
class Run:
    ttft: float  # seconds from the call to the first content
    decode_tps: float  # (tokens - 1) / (last content - first content)
    total: float
    tokens: int
    finish: str | None


def _run(t0: float, stamps: list[float], tokens: int, finish: str | None) -> Run:
    return Run(**result(t0, stamps, tokens, finish))


# --------------------------------------------------------------------------- the four ways


async def http_stream(session, url: str, model: str, tag: str, max_tokens: int,
                      headers: dict | None = None) -> Run:
    body = {"model": model, "messages": messages(tag), "stream": True, "temperature": 0,
            "max_tokens": max_tokens, "repeat_penalty": 1.0}
    stamps: list[float] = []
    finish = None
    t0 = time.perf_counter()
    async with session.post(url + "/v1/chat/completions", json=body, headers=headers) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{url}: {resp.status} {await resp.text()}")
        async for line in resp.content:
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or ():
                if choice["delta"].get("content"):
                    stamps.append(time.perf_counter())
                finish = choice.get("finish_reason") or finish
    # Tokens: greedy decoding that cannot end early runs to max_tokens ("length"); content
    # chunks may hold several tokens, so they are not counted.
    return _run(t0, stamps, max_tokens, finish)


# --------------------------------------------------------------------------- the section


async def run(work: Path, smoke: bool) -> Section:
    section = Section("llamacpp")
    sizes = SMOKE if smoke else FULL
    try:
        import llama_cpp  # noqa: F401  (the workers import it; here only whether it is there)
    except ImportError:
        section.skipped = "llama-cpp-python is not installed"
        return section
    t0 = time.perf_counter()
    gguf = build_gguf(work / "llama-bench" / "bench.gguf", sizes.shape)
    gguf["build_seconds"] = round(time.perf_counter() - t0, 2)
    section.data["gguf"] = gguf
    section.data["n_threads"] = THREADS
    section.data["max_tokens"] = sizes.max_tokens
    path = gguf["path"]

    have_plugin = plugin_installed("llamacpp")
    have_server = _server_available()
    missing = []
    if not have_plugin:
        missing.append("the llamacpp plugin (pip install -e plugins/llmux_llamacpp)")
    if not have_server:
        missing.append("llama-cpp-python's server extras (fastapi, uvicorn, sse-starlette, "
                       "starlette-context, pydantic-settings)")
    section.data["missing"] = missing

    # Direct and floor each get their own process and context, like every server: each
    # way's KV cache then holds only its own previous request.
    n_ctx = sizes.shape.context
    workers = {w: Worker(path, n_ctx, THREADS, work / f"llama-worker-{w}.log")
               for w in ("direct", "floor")}
    servers: list[Server] = []
    urls: dict[str, tuple[str, str, dict | None]] = {}
    env = library_env()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            if have_plugin:
                options = {"model_file": "bench.gguf", "n_ctx": n_ctx, "n_threads": THREADS}
                known = backend_option_names("llamacpp")
                options = {k: v for k, v in options.items() if not known or k in known}
                config = write_llmux_config(
                    work / "llamacpp-config",
                    {"llama-bench": {"type": "llm", "backend": "llamacpp", "path": "llama-bench",
                                     "vram_gb": 0.5, "chat_format": "plain",
                                     "options": options}},
                    models_dir=str(work), server={"preload": ["llama-bench"]})
                port = free_port()
                servers.append(Server("llmux-llamacpp", llmux_argv(config, port), port, work))
                urls["llmux"] = (servers[-1].url, "llama-bench", AUTH)
            if have_server:
                port = free_port()
                servers.append(Server(
                    "llama-cpp-server",
                    [sys.executable, "-m", "llama_cpp.server", "--model", path,
                     "--n_ctx", str(n_ctx), "--n_threads", str(THREADS),
                     "--host", "127.0.0.1", "--port", str(port), "--verbose", "False",
                     # Its default (True) aborts a running stream when the next request
                     # arrives: concurrent streams would not complete.
                     "--interrupt_requests", "False"],
                    port, work, health="/v1/models"))
                urls["llama_server"] = (servers[-1].url, "bench", None)
            settings = {}
            for way, worker in workers.items():
                hello = await worker.start(REPO)
                settings[way] = {"n_threads": hello["n_threads"], **hello["openmp"]}
            for server in servers:
                server.env = dict(env)
                server.start()
                started = process_env(server.proc.pid) or server.env
                way = "llmux" if server.name.startswith("llmux") else "llama_server"
                settings[way] = {"n_threads": THREADS, **openmp.settings(started)}
            section.data["settings"] = settings
            for server in servers:
                section.data[f"{server.name}_ready_s"] = await server.ready(session, 120)

            async def one(way: str, tag: str, max_tokens: int) -> Run:
                if way in workers:
                    return Run(**await workers[way].ask(way=way, tag=tag,
                                                        max_tokens=max_tokens))
                url, model, headers = urls[way]
                return await http_stream(session, url, model, tag, max_tokens, headers)

            ways = ["direct", "floor", *urls]
            section.data["prompt_tokens"] = await _prompt_tokens(session, workers, urls)
            for way in ways:  # warm-up: first token paths, caches, connections
                await one(way, "Warm", min(8, sizes.max_tokens))
            before = await _phases(session, urls.get("llmux"))
            runs: dict[str, list[Run]] = {w: [] for w in ways}
            for i in range(sizes.runs):
                order = ways[i % len(ways):] + ways[:i % len(ways)]  # rotate who goes first
                for way in order:
                    await asyncio.sleep(SETTLE_S)
                    # The same prompt for every way in a round (their caches are separate).
                    runs[way].append(await one(way, f"Run {i}", sizes.max_tokens))
            section.data["ttft_breakdown"] = await _breakdown(
                session, urls.get("llmux"), before, workers["floor"], sizes.runs)
            section.data["runs"] = {w: [vars(r) for r in rs] for w, rs in runs.items()}
            stats = {w: {"ttft_ms": median(r.ttft for r in rs) * 1000,
                         "decode_tps": median(r.decode_tps for r in rs),
                         "finish": sorted({str(r.finish) for r in rs})}
                     for w, rs in runs.items()}
            # Paired within a round (the ways of one round run back to back), so that a
            # change in the machine's load between rounds cancels out.
            for w, rs in runs.items():
                pairs = list(zip(rs, runs["direct"]))
                stats[w]["ttft_added_ms"] = median((a.ttft - b.ttft) * 1000 for a, b in pairs)
                stats[w]["decode_ratio"] = median(a.decode_tps / b.decode_tps for a, b in pairs)
                stats[w]["floor_ratio"] = median(a.decode_tps / b.decode_tps
                                                 for a, b in zip(rs, runs["floor"]))
            section.data["stats"] = stats
            _rows(section, stats)
            await _concurrent(section, sizes, urls, one)
    finally:
        for server in servers:
            server.stop()
        for worker in workers.values():
            await worker.stop()
    if missing:
        section.rows.append(Row("llamacpp", "not measured", None,
                                note="missing: " + "; ".join(missing)))
    return section


async def _phases(session, target) -> dict[str, tuple[float, float]]:
    """llmux's ``llmux_chat_phase_seconds``: phase -> (sum, count), {} without llmux."""
    if target is None:
        return {}
    url, _, headers = target
    async with session.get(url + "/metrics", headers=headers) as resp:
        text = await resp.text()
    return summary_totals(text, "llmux_chat_phase_seconds", "phase")


async def _breakdown(session, target, before: dict, floor: Worker, runs: int) -> dict:
    """Where llmux's time to first token went (ms, mean over the measured runs), beside
    the model's own work before its first token, part by part (measured in the worker)."""
    own = [await floor.ask(way="breakdown", tag=f"Run {i}") for i in range(runs)]
    out = {"model_work": {k: median(o[k] for o in own) for k in own[0]}}
    after = await _phases(session, target)
    for phase, (total, count) in after.items():
        t0, c0 = before.get(phase, (0.0, 0.0))
        if count > c0:
            out[f"llmux_{phase}_ms"] = (total - t0) / (count - c0) * 1000
    return out


def _server_available() -> bool:
    try:
        import importlib.util

        return all(importlib.util.find_spec(m) for m in ("fastapi", "uvicorn", "sse_starlette",
                                                         "starlette_context",
                                                         "pydantic_settings"))
    except (ImportError, ValueError):
        return False


async def _prompt_tokens(session, workers: dict, urls) -> dict:
    """Prompt tokens each way evaluates for the same message (they must agree)."""
    usage = await workers["direct"].ask(way="prompt_tokens", tag="Run 0")
    out = {"direct": usage["prompt_tokens"]}
    for way, (url, model, headers) in urls.items():
        body = {"model": model, "messages": messages("Run 0"), "max_tokens": 1,
                "temperature": 0}
        async with session.post(url + "/v1/chat/completions", json=body,
                                headers=headers) as resp:
            out[way] = (await resp.json()).get("usage", {}).get("prompt_tokens")
    return out


def _rows(section: Section, stats: dict) -> None:
    d = stats["direct"]
    agree = len(set(section.data["prompt_tokens"].values())) == 1
    note = "" if agree else f"prompt tokens differ: {section.data['prompt_tokens']}"
    for way, label in (("llmux", "llmux"), ("llama_server", "llama_cpp.server")):
        if way not in stats:
            continue
        s = stats[way]
        r = s["decode_ratio"]
        target = f">= {DECODE_TARGET}x" if way == "llmux" else "(peer: 0.82-0.88x)"
        section.rows.append(Row(
            "llamacpp", f"decode tok/s, {label} vs direct", s["decode_tps"], d["decode_tps"],
            "create_chat_completion, a script", "tok/s", r, target,
            (r >= DECODE_TARGET) if way == "llmux" and r is not None else None,
            "ratio: median of per-round ratios" + (f"; {note}" if note else "")))
        added = s["ttft_added_ms"]
        section.rows.append(Row(
            "llamacpp", f"TTFT, {label} vs direct", s["ttft_ms"], d["ttft_ms"],
            "create_chat_completion, a script", "ms", ratio(s["ttft_ms"], d["ttft_ms"]),
            f"<= +{TTFT_TARGET_MS:g} ms" if way == "llmux" else "(peer: +17 ms)",
            (added <= TTFT_TARGET_MS) if way == "llmux" else None,
            f"added {added:+.1f} ms (median of per-round differences)"))
    f = stats["floor"]
    for way in ("llmux", "direct"):
        if way in stats:
            section.rows.append(Row(
                "llamacpp", f"decode tok/s, {way} vs floor", stats[way]["decode_tps"],
                f["decode_tps"], "Llama.generate loop, a script", "tok/s",
                stats[way]["floor_ratio"]))
    if "llmux" in stats and "llama_server" in stats:
        section.rows.append(Row(
            "llamacpp", "decode tok/s, llmux vs llama_cpp.server", stats["llmux"]["decode_tps"],
            stats["llama_server"]["decode_tps"], "llama_cpp.server", "tok/s",
            ratio(stats["llmux"]["decode_tps"], stats["llama_server"]["decode_tps"])))
        section.rows.append(Row(
            "llamacpp", "TTFT, llmux vs llama_cpp.server", stats["llmux"]["ttft_ms"],
            stats["llama_server"]["ttft_ms"], "llama_cpp.server", "ms",
            ratio(stats["llmux"]["ttft_ms"], stats["llama_server"]["ttft_ms"])))


async def _concurrent(section, sizes: Sizes, urls, one) -> None:
    """N streams at once through each server vs the same N requests direct, one by one;
    the ways interleaved over ``sizes.concurrent_rounds`` rounds, medians."""
    n, m = sizes.streams, sizes.stream_tokens

    async def direct_sequential() -> dict:
        t0 = time.perf_counter()
        for i in range(n):
            await one("direct", f"Req {i}", m)
        return {"wall_s": time.perf_counter() - t0, "completed": n, "errors": []}

    async def concurrent(way: str) -> dict:
        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(way, f"Req {i}", m) for i in range(n)),
                                       return_exceptions=True)
        done = [r for r in results if isinstance(r, Run) and r.finish == "length"]
        return {"wall_s": time.perf_counter() - t0, "completed": len(done),
                "errors": [repr(r) for r in results if isinstance(r, BaseException)][:3],
                "ttft_ms_max": max((r.ttft for r in done), default=0) * 1000}

    ways = ["direct", *urls]
    rounds: dict[str, list[dict]] = {w: [] for w in ways}
    for r in range(sizes.concurrent_rounds):
        for way in ways[r % len(ways):] + ways[:r % len(ways)]:
            got = await (direct_sequential() if way == "direct" else concurrent(way))
            got["throughput_tps"] = got["completed"] * m / got["wall_s"]
            rounds[way].append(got)
    tps = {w: median(g["throughput_tps"] for g in rs) for w, rs in rounds.items()}
    section.data["concurrent"] = {"streams": n, "tokens_each": m, "rounds": rounds,
                                  "throughput_tps": tps}
    sequential = tps["direct"]
    for way in urls:
        complete = min(g["completed"] for g in rounds[way])
        label = "llmux" if way == "llmux" else "llama_cpp.server"
        r = ratio(tps[way], sequential)
        section.rows.append(Row(
            "llamacpp", f"{n} concurrent streams, {label}", tps[way], sequential,
            "direct, one after another", "tok/s", r,
            f">= {CONCURRENT_TARGET}x, all complete" if way == "llmux" else "",
            (r is not None and r >= CONCURRENT_TARGET and complete == n)
            if way == "llmux" else None,
            f"{complete}/{n} complete in every round"))
