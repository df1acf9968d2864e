"""2. llama.cpp the same GGUF, prompt and token count four ways, interleaved run by run:

- ``llmux``: through ``llmux serve`` and the llamacpp plugin, over HTTP (SSE);
- ``direct``: in-process ``llama_cpp.Llama.create_chat_completion(stream=True)``;
- ``floor``: in-process ``Llama.generate`` over the same prompt tokens (no template, no
  detokenizing, no chunk dicts): the least any Python caller can pay;
- ``llama_server``: llama-cpp-python's own OpenAI server (``python -m llama_cpp.server``).

Time to first token and decode tokens/s (medians over the runs), then 16 concurrent streams
against 16 direct requests one after another. Greedy decoding on a random-weight GGUF whose
output matrix never picks EOS, so every run decodes exactly ``max_tokens`` tokens. Each
engine uses the same ``n_threads`` (1 by default: on a 2-core machine the other core is left
to the HTTP side, the same for llmux and the peer server).
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

from .gguf_model import SMOKE_SHAPE, Shape, build_gguf
from .harness import (
    AUTH,
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

DECODE_TARGET = 0.97  # llmux / direct decode tokens/s
TTFT_TARGET_MS = 5.0  # llmux TTFT minus direct TTFT
CONCURRENT_TARGET = 0.95  # 16 concurrent through llmux / direct sequential throughput
PROMPT = "Tell me a story about a small robot and a big cat, in three short paragraphs."


@dataclass(frozen=True)
class Sizes:
    shape: Shape
    runs: int
    max_tokens: int
    streams: int
    stream_tokens: int
    concurrent_rounds: int


FULL = Sizes(Shape(), runs=int(os.environ.get("LLMUX_BENCH_RUNS", "7")), max_tokens=128,
             streams=16, stream_tokens=64, concurrent_rounds=3)
SMOKE = Sizes(SMOKE_SHAPE, runs=1, max_tokens=8, streams=4, stream_tokens=4,
              concurrent_rounds=1)
THREADS = int(os.environ.get("LLMUX_BENCH_THREADS", "1"))


@dataclass
class Run:
    ttft: float  # seconds from the call to the first content
    decode_tps: float  # (tokens - 1) / (last content - first content)
    total: float
    tokens: int
    finish: str | None


def _messages(tag: str) -> list[dict]:
    # A different first word each round: llama.cpp reuses the cached prefix of the previous
    # prompt, so each round's prompt is fresh; within a round every way gets the same one.
    return [{"role": "user", "content": f"{tag}. {PROMPT}"}]


def _run(t0: float, stamps: list[float], tokens: int, finish: str | None) -> Run:
    if not stamps:
        raise RuntimeError("no content was generated")
    span = stamps[-1] - stamps[0]
    return Run(stamps[0] - t0, (tokens - 1) / span if span > 0 else float("inf"),
               stamps[-1] - t0, tokens, finish)


# --------------------------------------------------------------------------- the four ways


async def http_stream(session, url: str, model: str, tag: str, max_tokens: int,
                      headers: dict | None = None) -> Run:
    body = {"model": model, "messages": _messages(tag), "stream": True, "temperature": 0,
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


def direct_stream(llm, tag: str, max_tokens: int) -> Run:
    stamps: list[float] = []
    finish = None
    t0 = time.perf_counter()
    for chunk in llm.create_chat_completion(_messages(tag), max_tokens=max_tokens,
                                            temperature=0, repeat_penalty=1.0, stream=True):
        choice = chunk["choices"][0]
        if choice["delta"].get("content"):
            stamps.append(time.perf_counter())
        finish = choice.get("finish_reason") or finish
    return _run(t0, stamps, max_tokens, finish)


def floor_stream(llm, tag: str, max_tokens: int) -> Run:
    # What the GGUF's embedded template (benchmarks.gguf_model.CHATML) renders.
    prompt = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"
                     for m in _messages(tag)) + "<|im_start|>assistant\n"
    stamps: list[float] = []
    t0 = time.perf_counter()
    tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    n = 0
    for _ in llm.generate(tokens, temp=0, repeat_penalty=1.0):
        stamps.append(time.perf_counter())
        n += 1
        if n >= max_tokens:
            break
    return _run(t0, stamps, max_tokens, "length")


# --------------------------------------------------------------------------- the section


async def run(work: Path, smoke: bool) -> Section:
    section = Section("llamacpp")
    sizes = SMOKE if smoke else FULL
    try:
        import llama_cpp
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

    # Direct and floor each get their own context, like every server: each way's KV cache
    # then holds only its own previous request, and every way reuses the same prefix.
    llm = llama_cpp.Llama(model_path=path, n_ctx=sizes.shape.context, n_threads=THREADS,
                          verbose=False)
    floor_llm = llama_cpp.Llama(model_path=path, n_ctx=sizes.shape.context,
                                n_threads=THREADS, verbose=False)
    servers: list[Server] = []
    urls: dict[str, tuple[str, str, dict | None]] = {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            if have_plugin:
                options = {"model_file": "bench.gguf", "n_ctx": sizes.shape.context,
                           "n_threads": THREADS}
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
                     "--n_ctx", str(sizes.shape.context), "--n_threads", str(THREADS),
                     "--host", "127.0.0.1", "--port", str(port), "--verbose", "False",
                     # Its default (True) aborts a running stream when the next request
                     # arrives: concurrent streams would not complete.
                     "--interrupt_requests", "False"],
                    port, work, health="/v1/models"))
                urls["llama_server"] = (servers[-1].url, "bench", None)
            for server in servers:
                server.start()
            for server in servers:
                section.data[f"{server.name}_ready_s"] = await server.ready(session, 120)

            async def one(way: str, tag: str, max_tokens: int) -> Run:
                if way == "direct":
                    return await asyncio.to_thread(direct_stream, llm, tag, max_tokens)
                if way == "floor":
                    return await asyncio.to_thread(floor_stream, floor_llm, tag, max_tokens)
                url, model, headers = urls[way]
                return await http_stream(session, url, model, tag, max_tokens, headers)

            ways = ["direct", "floor", *urls]
            section.data["prompt_tokens"] = await _prompt_tokens(session, llm, urls)
            for way in ways:  # warm-up: first token paths, caches, connections
                await one(way, "Warm", min(8, sizes.max_tokens))
            runs: dict[str, list[Run]] = {w: [] for w in ways}
            for i in range(sizes.runs):
                order = ways[i % len(ways):] + ways[:i % len(ways)]  # rotate who goes first
                for way in order:
                    # The same prompt for every way in a round (their caches are separate).
                    runs[way].append(await one(way, f"Run {i}", sizes.max_tokens))
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
            await _concurrent(section, sizes, urls, session, llm, one)
    finally:
        for server in servers:
            server.stop()
        llm.close()
        floor_llm.close()
    if missing:
        section.rows.append(Row("llamacpp", "not measured", None,
                                note="missing: " + "; ".join(missing)))
    return section


def _server_available() -> bool:
    try:
        import importlib.util

        return all(importlib.util.find_spec(m) for m in ("fastapi", "uvicorn", "sse_starlette",
                                                         "starlette_context",
                                                         "pydantic_settings"))
    except (ImportError, ValueError):
        return False


async def _prompt_tokens(session, llm, urls) -> dict:
    """Prompt tokens each way evaluates for the same message (they must agree)."""
    out = {"direct": llm.create_chat_completion(_messages("Run 0"), max_tokens=1,
                                                temperature=0)["usage"]["prompt_tokens"]}
    for way, (url, model, headers) in urls.items():
        body = {"model": model, "messages": _messages("Run 0"), "max_tokens": 1,
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
            "in-process create_chat_completion", "tok/s", r, target,
            (r >= DECODE_TARGET) if way == "llmux" and r is not None else None,
            "ratio: median of per-round ratios" + (f"; {note}" if note else "")))
        added = s["ttft_added_ms"]
        section.rows.append(Row(
            "llamacpp", f"TTFT, {label} vs direct", s["ttft_ms"], d["ttft_ms"],
            "in-process create_chat_completion", "ms", ratio(s["ttft_ms"], d["ttft_ms"]),
            f"<= +{TTFT_TARGET_MS:g} ms" if way == "llmux" else "(peer: +17 ms)",
            (added <= TTFT_TARGET_MS) if way == "llmux" else None,
            f"added {added:+.1f} ms (median of per-round differences)"))
    f = stats["floor"]
    for way in ("llmux", "direct"):
        if way in stats:
            section.rows.append(Row(
                "llamacpp", f"decode tok/s, {way} vs floor", stats[way]["decode_tps"],
                f["decode_tps"], "in-process Llama.generate loop", "tok/s",
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


async def _concurrent(section, sizes: Sizes, urls, session, llm, one) -> None:
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
