"""The Python half of ``scripts/gpu_check.sh``: random-weight models at production shapes,
served through llmux on the GPU; GPU-vs-CPU speed-up, measured vs estimated VRAM, and VRAM
returned after unload. Writes ``gpu_check.json`` and prints a table that says plainly what
it could not measure.

    python -m benchmarks.gpu_check --out DIR [--cpu-only] [--only qwen3.5-4b,gpt-oss-20b]
        [--budget-s 270] [--cpu-half-20b]

``--cpu-only`` is the dry run for a machine without a GPU: the same steps with the same
architectures at tiny sizes, on the CPU.

The models themselves are built by :mod:`benchmarks.gpu_models`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .harness import (
    ADMIN,
    ADMIN_KEY,
    AUTH,
    REPO,
    Server,
    free_port,
    machine,
    median,
    write_llmux_config,
)
from .gpu_models import GB, build

# --------------------------------------------------------------------------- measuring


def gpu_used_gb() -> float | None:
    """Memory used on GPU 0, all processes (nvidia-smi: this process holds no model)."""
    if not shutil.which("nvidia-smi"):
        return None
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,"
                          "nounits", "-i", "0"], capture_output=True, text=True)
    try:
        return float(out.stdout.strip().splitlines()[0]) / 1024
    except (ValueError, IndexError):
        return None


async def chat_stream(session, url: str, model: str, max_tokens: int) -> dict:
    body = {"model": model, "stream": True, "max_tokens": max_tokens, "temperature": 0,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Write a long story about a robot."}]}
    stamps, usage = [], None
    t0 = time.perf_counter()
    async with session.post(url + "/v1/chat/completions", json=body, headers=AUTH) as resp:
        if resp.status != 200:
            return {"error": f"{resp.status}: {(await resp.text())[:300]}"}
        async for line in resp.content:
            if not line.startswith(b"data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta", {})
                if delta.get("content") or delta.get("reasoning_content"):
                    stamps.append(time.perf_counter())
    n = (usage or {}).get("completion_tokens") or len(stamps)
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0
    return {"ttft_ms": (stamps[0] - t0) * 1000 if stamps else None,
            "decode_tps": (n - 1) / span if span > 0 else None, "tokens": n}


def llmux_bench(url: str, model: str, device: str, max_tokens: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "llmux", "--log-level", "WARNING", "bench",
                          model, "--url", url, "--key", ADMIN_KEY, "--device", device,
                          "--runs", "1", "--max-tokens", str(max_tokens), "--json"],
                         cwd=REPO, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-500:]}
    return json.loads(out.stdout)


async def measure_model(session, server: Server, name: str, args, report: dict,
                        deadline: float) -> None:
    import aiohttp  # noqa: F401  (the session's library)

    entry = report["models"][name]
    before = gpu_used_gb()
    t0 = time.perf_counter()
    async with session.post(f"{server.url}/v1/admin/models/{name}/load", headers=ADMIN) as r:
        body = await r.json()
        if r.status != 200:
            entry["error"] = f"load: {r.status} {body.get('error', {}).get('message')}"
            return
    entry["load_s"] = time.perf_counter() - t0
    loaded = gpu_used_gb()
    slot = next((s for s in body.get("loaded", []) if s["model"] == name), {})
    entry["vram_estimated_gb"] = slot.get("vram_estimated_gb")
    entry["vram_llmux_measured_gb"] = slot.get("vram_measured_gb")
    entry["vram_nvidia_smi_gb"] = (loaded - before) if loaded is not None else None
    runs = [await chat_stream(session, server.url, name, args.max_tokens) for _ in range(3)]
    entry["through_llmux"] = {
        "ttft_ms": median(r["ttft_ms"] for r in runs if r.get("ttft_ms")),
        "decode_tps": median(r["decode_tps"] for r in runs if r.get("decode_tps")),
        "runs": runs}
    cpu_ok = name != "gpt-oss-20b" or args.cpu_half_20b or args.cpu_only
    if time.perf_counter() > deadline:
        entry["bench"] = {"not_measured": "time budget spent"}
    else:
        device = "both" if cpu_ok else "cuda"
        entry["bench"] = await asyncio.to_thread(llmux_bench, server.url, name, device,
                                                 args.bench_tokens)
        if not cpu_ok:
            entry["bench"]["cpu_not_measured"] = (
                "the CPU half of gpt-oss-20b (MXFP4 dequantised to ~42 GB) takes minutes to "
                "load: pass --cpu-half-20b with time to spare")
    async with session.post(f"{server.url}/v1/admin/models/{name}/unload",
                            headers=ADMIN) as r:
        await r.read()
    await asyncio.sleep(1.0)
    after = gpu_used_gb()
    if before is not None and after is not None and loaded is not None:
        entry["vram_after_unload_gb"] = after - before
        entry["vram_returned_gb"] = loaded - after


# --------------------------------------------------------------------------- main


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--cpu-only", action="store_true", help="tiny shapes on the CPU (dry run)")
    p.add_argument("--only", default="qwen3.5-4b,gpt-oss-20b")
    p.add_argument("--budget-s", type=float, default=270.0,
                   help="stop starting new steps after this many seconds (default 270)")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--bench-tokens", type=int, default=16)
    p.add_argument("--cpu-half-20b", action="store_true")
    return p.parse_args(argv)


def environment(cpu_only: bool) -> dict:
    import torch
    import transformers

    env = {"torch": torch.__version__, "transformers": transformers.__version__,
           "cuda_available": torch.cuda.is_available(), "cpu_only": cpu_only,
           "machine": machine()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_total_gb=props.total_memory / GB,
                   capability=f"{props.major}.{props.minor}")
    try:
        import llama_cpp

        env["llama_cpp"] = llama_cpp.__version__
        env["llama_cpp_gpu_offload"] = bool(llama_cpp.llama_supports_gpu_offload())
    except ImportError:
        env["llama_cpp"] = None
    return env


async def run(args) -> dict:
    t_start = time.perf_counter()
    deadline = t_start + args.budget_s
    report: dict = {"env": environment(args.cpu_only), "models": {}, "not_measured": []}
    env = report["env"]
    if not args.cpu_only and not env["cuda_available"]:
        report["not_measured"].append("everything on the GPU: torch sees no CUDA device "
                                      "(run with --cpu-only for the dry run)")
        return report
    device = "cpu" if args.cpu_only else "cuda"
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    models_dir = args.out / "models"
    physical = {}
    for name in names:
        if time.perf_counter() > deadline:
            report["not_measured"].append(f"{name}: time budget spent before building it")
            continue
        print(f"[gpu_check] building {name} ({'tiny' if args.cpu_only else 'production'} "
              f"shape) on {device} ...", flush=True)
        try:
            info = build(name, models_dir / name, device, args.cpu_only)
        except Exception as exc:  # say so and go on: the other model may still build
            report["models"][name] = {"error": f"build: {type(exc).__name__}: {exc}"}
            report["not_measured"].append(f"{name}: its checkpoint could not be built ({exc})")
            continue
        report["models"][name] = {"built": info}
        print(f"[gpu_check]   {info['params'] / 1e9:.2f} B params, {info['bytes'] / GB:.1f} GB "
              f"in {info['seconds']:.0f} s", flush=True)
        options = {"max_context": 4096}
        if name.startswith("gpt-oss"):
            options["allow_dequantise"] = True  # no network: no MXFP4 kernels to fetch
        physical[name] = {"type": "llm", "backend": "transformers", "path": name,
                          "vram_gb": max(0.1, round(info["bytes"] / GB * 1.1, 1)),
                          "chat_format": "qwen3_5" if name.startswith("qwen") else "gpt_oss",
                          "options": options}
    if not physical:
        return report
    budget = env.get("gpu_total_gb", 64.0)
    config = write_llmux_config(args.out / "config", physical, budget_gb=round(budget, 1),
                                reserve_gb=1.0, models_dir=str(models_dir))
    port = free_port()
    server = Server("llmux-gpu-check", [sys.executable, "-m", "llmux", "serve",
                                        "--config", str(config), "--port", str(port)],
                    port, args.out)
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900)) as session:
            server.start()
            report["startup_s"] = await server.ready(session, timeout=120)
            for name in physical:
                if time.perf_counter() > deadline:
                    report["not_measured"].append(f"{name}: time budget spent before serving")
                    continue
                print(f"[gpu_check] serving {name} through llmux ...", flush=True)
                try:
                    await measure_model(session, server, name, args, report, deadline)
                except Exception as exc:  # report it and go on with the next model
                    report["models"][name]["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        server.stop()
        report["server_log_tail"] = server.log_tail(40)
    if not env.get("llama_cpp_gpu_offload"):
        report["not_measured"].append(
            "llama.cpp on the GPU: " + ("llama-cpp-python is not installed" if not env.get(
                "llama_cpp") else "this llama-cpp-python build has no GPU offload (carry a "
                                  "CUDA wheel built for sm_90)"))
    if not args.cpu_only:
        report["not_measured"].append(
            "gpt-oss-20b with native MXFP4 kernels: they are fetched from the Hub "
            "(kernels-community), and this machine has no network; measured dequantised")
    report["seconds"] = time.perf_counter() - t_start
    return report


def _f(value, spec=".1f") -> str:
    return "-" if value is None else format(value, spec)


def format_report(report: dict) -> str:
    env = report["env"]
    dry = " [--cpu-only dry run]" if env["cpu_only"] else ""
    lines = [f"GPU check: {env.get('gpu', 'no GPU')} (torch {env['torch']}, transformers "
             f"{env['transformers']}, llama_cpp {env.get('llama_cpp')}, GPU offload "
             f"{env.get('llama_cpp_gpu_offload')}){dry}"]
    if report.get("startup_s") is not None:
        lines.append(f"llmux serve ready in {report['startup_s']:.2f} s")
    head = ("model", "load s", "TTFT ms", "tok/s llmux", "CPU tok/s", "GPU tok/s", "speed-up",
            "VRAM est", "VRAM used", "returned")
    lines.append("  ".join(f"{h:>11}" for h in head))
    for name, m in report["models"].items():
        if "error" in m and "load_s" not in m:
            lines.append(f"{name:>11}  not measured: {m['error']}")
            continue
        b = m.get("bench", {})
        devices = b.get("devices", {})
        cpu, gpu = devices.get("cpu", {}), devices.get("cuda", {})
        cells = (name, _f(m.get("load_s")), _f(m.get("through_llmux", {}).get("ttft_ms")),
                 _f(m.get("through_llmux", {}).get("decode_tps")), _f(cpu.get("decode_tps")),
                 _f(gpu.get("decode_tps")), _f(b.get("speedup")) + ("x" if b.get("speedup")
                                                                   else ""),
                 _f(m.get("vram_estimated_gb"), ".2f"),
                 _f(m.get("vram_nvidia_smi_gb") or m.get("vram_llmux_measured_gb"), ".2f"),
                 _f(m.get("vram_returned_gb"), ".2f"))
        lines.append("  ".join(f"{c:>11}" for c in cells))
        for key in ("error",):
            if key in m:
                lines.append(f"{'':>11}  error: {m[key]}")
        for half in (cpu, gpu):
            if "skipped" in half or "error" in half:
                lines.append(f"{'':>11}  {half.get('device')}: not measured: "
                             f"{half.get('skipped') or half.get('error')}")
        if b.get("cpu_not_measured"):
            lines.append(f"{'':>11}  cpu: not measured: {b['cpu_not_measured']}")
        if b.get("error"):
            lines.append(f"{'':>11}  llmux bench failed: {b['error']}")
    lines.append("Not measured here:")
    lines += [f"  - {item}" for item in report["not_measured"]] or ["  - (nothing)"]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    report = asyncio.run(run(args))
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    print(format_report(report))
    print(f"\nfull report: {args.out / 'gpu_check.json'}")
    failed = any("error" in m for m in report["models"].values())
    return 1 if failed or not report["models"] else 0


if __name__ == "__main__":
    sys.exit(main())
