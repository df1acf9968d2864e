"""The Python half of ``scripts/gpu_check.sh``: random-weight models at production shapes,
served through llmux on the GPU; GPU-vs-CPU speed-up, measured vs estimated VRAM, and VRAM
returned after unload. Writes ``gpu_check.json`` and prints a table that says plainly what
it could not measure.

    python -m benchmarks.gpu_check --out DIR [--cpu-only] [--only qwen3.5-4b,gpt-oss-20b]
        [--budget-s 270] [--cpu-half-20b]

``--cpu-only`` is the dry run for a machine without a GPU: the same steps with the same
architectures at tiny sizes, on the CPU.

The shapes are the published ``config.json`` values of the production checkpoints, written
here because the GPU machine has no network. Weights are random (N(0, 0.02); the gpt-oss
experts as random MXFP4 blocks with small exponents), written as sharded safetensors with an
index, like a download. Built on the device itself, so it takes seconds, not minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
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

# Qwen3.5-4B (text tower; model_type qwen3_5_text): hybrid Gated DeltaNet + gated attention,
# one full-attention layer in four.
QWEN35_4B = {
    "vocab_size": 248320, "hidden_size": 2560, "intermediate_size": 9216,
    "num_hidden_layers": 32, "num_attention_heads": 16, "num_key_value_heads": 4,
    "head_dim": 256, "linear_num_key_heads": 16, "linear_num_value_heads": 32,
    "linear_key_head_dim": 128, "linear_value_head_dim": 128, "linear_conv_kernel_dim": 4,
    "layer_types": ["linear_attention"] * 3 + ["full_attention"],  # repeated to the depth
    "max_position_embeddings": 262144, "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000000.0,
                        "partial_rotary_factor": 0.25, "mrope_section": [11, 11, 10],
                        "mrope_interleaved": True},
}
# openai/gpt-oss-20b: 24 layers, 32 experts (4 per token), MXFP4 experts.
GPT_OSS_20B = {
    "vocab_size": 201088, "hidden_size": 2880, "intermediate_size": 2880,
    "num_hidden_layers": 24, "num_attention_heads": 64, "num_key_value_heads": 8,
    "head_dim": 64, "num_local_experts": 32, "num_experts_per_tok": 4,
    "sliding_window": 128, "layer_types": ["sliding_attention", "full_attention"],
    "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "swiglu_limit": 7.0,
    "tie_word_embeddings": False,
    "rope_parameters": {"rope_type": "yarn", "rope_theta": 150000.0, "factor": 32.0,
                        "beta_fast": 32.0, "beta_slow": 1.0, "truncate": False,
                        "original_max_position_embeddings": 4096},
}
# The dry run: the same keys, tiny.
TINY = {
    "qwen3.5-4b": {"vocab_size": 0, "hidden_size": 64, "intermediate_size": 128,
                   "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "head_dim": 32, "linear_num_key_heads": 2, "linear_num_value_heads": 4,
                   "linear_key_head_dim": 16, "linear_value_head_dim": 16,
                   "max_position_embeddings": 4096,
                   "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                       "partial_rotary_factor": 0.25,
                                       "mrope_section": [2, 1, 1], "mrope_interleaved": True}},
    "gpt-oss-20b": {"vocab_size": 0, "hidden_size": 64, "intermediate_size": 64,
                    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                    "head_dim": 16, "num_local_experts": 4, "num_experts_per_tok": 2,
                    "max_position_embeddings": 4096},
}
MXFP4_SKIP = ("self_attn", "router", "embed_tokens", "lm_head")
GB = 1024**3


# --------------------------------------------------------------------------- building


def _tiny_checkpoints():
    """The transformers plugin's test helpers: a trained tokenizer and the chat templates."""
    path = REPO / "plugins" / "llmux_transformers" / "tests" / "tiny_checkpoints.py"
    spec = importlib.util.spec_from_file_location("llmux_gpu_check_tiny", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(name: str, folder: Path, device: str, tiny: bool) -> dict:
    """Write a random-weight checkpoint of ``name`` to ``folder``; return what was built."""
    import torch
    from safetensors.torch import save_file

    t0 = time.perf_counter()
    helpers = _tiny_checkpoints()
    tok = helpers.train_tokenizer()
    qwen = name.startswith("qwen")
    values = dict(QWEN35_4B if qwen else GPT_OSS_20B)
    if tiny:
        values.update(TINY[name])
    if not values["vocab_size"]:
        values["vocab_size"] = len(tok)
    depth = values["num_hidden_layers"]
    pattern = values["layer_types"]
    values["layer_types"] = (pattern * depth)[:depth]
    specials = helpers._ids(tok, "<|im_end|>", "<|endoftext|>") if qwen else helpers._ids(
        tok, "<|return|>", "<|call|>")
    pad = helpers._ids(tok, "<|endoftext|>")[0]
    if qwen:
        from transformers import Qwen3_5ForCausalLM as Model
        from transformers import Qwen3_5TextConfig as Config

        config = Config(**values, eos_token_id=specials[0], pad_token_id=pad)
    else:
        from transformers import GptOssConfig as Config
        from transformers import GptOssForCausalLM as Model

        config = Config(**values, eos_token_id=specials, pad_token_id=pad)
    with torch.device("meta"):
        shapes = {k: (tuple(v.shape), v.dtype) for k, v in Model(config).state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator(device=device).manual_seed(0)
    shard, shard_bytes, index, n_shard, total = {}, 0, {}, 0, 0
    params = 0

    def flush():
        nonlocal shard, shard_bytes, n_shard
        if shard:
            n_shard += 1
            fname = f"model-{n_shard:05d}.safetensors"
            save_file({k: v.cpu() for k, v in shard.items()}, folder / fname,
                      metadata={"format": "pt"})
            index.update({k: fname for k in shard})
            shard, shard_bytes = {}, 0

    mxfp4 = not qwen
    for key, (shape, _) in shapes.items():
        params += _numel(shape)
        if mxfp4 and key.endswith(("mlp.experts.gate_up_proj", "mlp.experts.down_proj")):
            experts, cols, rows = shape  # transformers keeps (E, in, out)
            tensors = {
                key + "_blocks": torch.randint(0, 256, (experts, rows, cols // 32, 16),
                                               dtype=torch.uint8, device=device, generator=gen),
                key + "_scales": torch.randint(118, 124, (experts, rows, cols // 32),
                                               dtype=torch.uint8, device=device, generator=gen),
            }
        elif "norm" in key and len(shape) == 1:
            tensors = {key: torch.ones(shape, dtype=torch.bfloat16, device=device)}
        else:
            t = torch.empty(shape, dtype=torch.bfloat16, device=device)
            t.normal_(0.0, 0.02, generator=gen)
            tensors = {key: t}
        for k, t in tensors.items():
            shard[k] = t
            size = t.numel() * t.element_size()
            shard_bytes += size
            total += size
        if shard_bytes >= 2 * GB:
            flush()
    flush()
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": index}, indent=1))
    saved = config.to_dict()
    saved["architectures"] = [Model.__name__]
    saved["torch_dtype"] = "bfloat16"
    if mxfp4:
        saved["quantization_config"] = {
            "quant_method": "mxfp4",
            "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                       "model.embed_tokens", "lm_head"]}
    (folder / "config.json").write_text(json.dumps(saved, indent=2))
    helpers.save_tokenizer(tok, folder, "qwen3_5" if qwen else "gpt_oss")
    helpers._generation_config(folder, specials, pad)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return {"params": params, "bytes": total, "seconds": time.perf_counter() - t0,
            "layers": depth, "hidden": values["hidden_size"], "vocab": values["vocab_size"]}


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


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
