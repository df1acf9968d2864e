"""Production fit on the GPU: llmux's own sizes against the allocator's.

    python -m benchmarks.gpu_fit --out DIR [--only qwen3.5-4b,cohere-transcribe]
        [--budget-s 480] [--kernels-dir DIR] [--cpu-only] [--context N]

Each transformers production model (Qwen3.5-4B with FP8 on load, Qwen3.5-9B-FP8 with its
vision tower, gpt-oss-20b, Cohere Transcribe) and one Chatterbox is written at its published
shape by :mod:`benchmarks.production_shapes` (sparse files: the weights read as zeros, which
costs nothing and changes no size), sized by the plugin's ``estimate_vram`` under the
shipped config's budget (the fitted context), loaded by the plugin's ``load`` on an emulated
16 GB card (``torch.cuda.set_per_process_memory_fraction`` to the usable budget), and driven
once at its limit: a chat prompt filling the fitted context (with an image for vision
models), 35 s of audio (the longest chunk Cohere Transcribe takes), a long sentence.

Per model it prints the production estimate and the estimate for the plan this machine can
run (they differ where a kernel is missing: FP8 and MXFP4 need the hub kernels, offline in
``--kernels-dir``), the weights the allocator holds after the load, the peak of the run, and
estimate / peak (goal: within 10%, and never under). A plan whose own estimate does not fit
the emulated card is not loaded, and the report says why.

``--cpu-only`` is the dry run for a machine without a GPU: the same steps on the CPU
(transformers models in bfloat16, a short context (``--context``, default 256), 1 s of audio,
25 speech tokens; by default only Cohere Transcribe and Chatterbox, the Qwen prefill takes
minutes on two cores); the CPU has no allocator statistics, so only weights are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from .gpu_fit_drive import estimate_here, exercise, stand_in_ids, write_conds
from .harness import REPO

GiB = 1024**3
MODELS = ("qwen3.5-4b", "qwen3.5-9b-fp8", "gpt-oss-20b", "cohere-transcribe", "chatterbox")
CPU_MODELS = ("cohere-transcribe", "chatterbox")
TOLERANCE = 0.10


# --------------------------------------------------------------------------- memory


class Memory:
    """The CUDA caching allocator's figures (``None`` on the CPU)."""

    def __init__(self, device: str) -> None:
        import torch

        self.torch = torch
        self.cuda = device.startswith("cuda")

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def now(self) -> dict[str, float] | None:
        if not self.cuda:
            return None
        self.sync()
        c = self.torch.cuda
        free, total = c.mem_get_info()
        return {"allocated": c.memory_allocated() / GiB, "reserved": c.memory_reserved() / GiB,
                "device_used": (total - free) / GiB}

    def reset_peak(self) -> None:
        if self.cuda:
            self.sync()
            self.torch.cuda.reset_peak_memory_stats()

    def peak(self) -> dict[str, float] | None:
        if not self.cuda:
            return None
        self.sync()
        c = self.torch.cuda
        return {"allocated": c.max_memory_allocated() / GiB,
                "reserved": c.max_memory_reserved() / GiB}

    def emulate(self, usable_gib: float) -> float | None:
        """Cap this process's allocator at ``usable_gib``; the fraction of the device set."""
        if not self.cuda:
            return None
        total = self.torch.cuda.get_device_properties(0).total_memory / GiB
        fraction = min(1.0, usable_gib / total)
        self.torch.cuda.set_per_process_memory_fraction(fraction, 0)
        return fraction


def _modules(handle: Any) -> list:
    import torch

    modules = []
    for value in vars(handle).values():
        if isinstance(value, torch.nn.Module):
            modules.append(value)
        elif value is not None and hasattr(value, "__dict__"):  # chatterbox's tts, vision
            modules += [v for v in vars(value).values() if isinstance(v, torch.nn.Module)]
    return modules


def tensor_gib(handle: Any) -> float:
    """GiB of every parameter and buffer reachable from the handle, on any device."""
    seen, total = set(), 0
    for module in _modules(handle):
        for t in [*module.parameters(), *module.buffers()]:
            if t.data_ptr() not in seen:
                seen.add(t.data_ptr())
                total += t.numel() * t.element_size()
    return total / GiB


def randomise(handle: Any) -> None:
    """Random weights, in place: the sparse files read as zeros, and zeros are degenerate
    (weight-normalised convolutions divide by their norm). FP8 and MXFP4 tensors keep
    their zeros, which are valid values; nothing is allocated beyond one layer's noise."""
    import torch

    g = None
    with torch.no_grad():
        for module in _modules(handle):
            for p in module.parameters():
                if p.dtype in (torch.float32, torch.bfloat16, torch.float16):
                    if g is None or g.device != p.device:
                        g = torch.Generator(device=p.device).manual_seed(0)
                    p.normal_(0.0, 0.02, generator=g)


# --------------------------------------------------------------------------- the models


def production_config(models_dir: Path, out: Path):
    """The shipped config with its models read from ``models_dir``."""
    from llmux.config import load_config
    from llmux.plugins import get_plugin_manager
    from llmux.runtime import Runtimes

    models = yaml.safe_load((REPO / "config" / "models.yaml").read_text())
    models["models_dir"] = str(models_dir)
    directory = out / "config"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "models.yaml").write_text(yaml.safe_dump(models))
    (directory / "api_keys.yaml").write_text((REPO / "config" / "api_keys.yaml").read_text())
    os.environ.pop("LLMUX_MODELS_DIR", None)
    runtimes = Runtimes(get_plugin_manager())
    missing: list[str] = []  # a plugin not installed here: its models are not measured
    return load_config(directory, runtimes, missing_backends=missing), runtimes


# --------------------------------------------------------------------------- one model


def check(name: str, config, runtimes, device: str, args, memory: Memory) -> dict:
    from llmux.sizing import fit_model

    pm = config.physical[name]
    backend = runtimes.get(pm.backend)
    usable = config.budget_gb - config.reserve_gb
    f = fit_model(backend, pm, usable)
    entry: dict[str, Any] = {"fit": f.to_json(), "production_estimate_gb": f.gb,
                             "fitted_context": f.context,
                             "estimate_parts": dict((f.estimate.parts or {}) if f.estimate
                                                    else {})}
    if f.problem or f.error:
        entry["error"] = f"fit: {f.problem or f.error}"
        return entry
    context = (args.context or f.context) if f.context else None
    fitted = replace(pm, context=context)
    if device == "cpu" and pm.backend == "transformers":  # the dry run: half the memory
        fitted = replace(fitted, options={**pm.options, "dtype": "bfloat16"})
    here_gb, plan_here = estimate_here(fitted, context, device)
    if here_gb is None and device == "cpu":  # the plugin sizes for CUDA only
        plan_here = "on cpu, in float32 (its estimate is for CUDA)"
    elif here_gb is None:
        here_gb, plan_here = f.gb, (f.estimate.note if f.estimate else "")
    entry.update(estimate_here_gb=here_gb, plan_here=plan_here)
    if memory.cuda and here_gb > usable and not args.no_card_limit:
        entry["not_measured"] = (
            f"the plan here ({entry['plan_here']}) needs {entry['estimate_here_gb']:.2f} GiB, "
            f"over the emulated card's {usable:.1f}: it is not the production plan "
            "(a kernel is missing; pass --kernels-dir), or run with --no-card-limit")
        return entry
    before = memory.now()
    t0 = time.perf_counter()
    handle = backend.load(fitted, device)
    try:
        entry["load_s"] = round(time.perf_counter() - t0, 1)
        entry["weights_gb"] = tensor_gib(handle)
        randomise(handle)
        entry["after_load"] = memory.now()
        memory.reset_peak()
        t1 = time.perf_counter()
        entry["run"] = exercise(fitted, backend, handle, context, args)
        entry["run_s"] = round(time.perf_counter() - t1, 1)
        entry["peak"] = memory.peak()
    finally:
        backend.unload(fitted, handle)
        del handle
    entry["after_unload"] = memory.now()
    if before and entry["after_unload"]:
        entry["left_after_unload_gb"] = entry["after_unload"]["allocated"] - before["allocated"]
    peak = (entry.get("peak") or {}).get("reserved")
    if peak and here_gb:
        ratio = here_gb / peak
        entry["estimate_over_peak"] = round(ratio, 3)
        entry["verdict"] = ("under: the estimate is too small" if ratio < 1 else
                            "within 10%" if ratio <= 1 + TOLERANCE else
                            "over by more than 10%")
    return entry


# --------------------------------------------------------------------------- main


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_fit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--only", help=f"comma-separated (default: {','.join(MODELS)}; "
                                  f"--cpu-only: {','.join(CPU_MODELS)})")
    p.add_argument("--budget-s", type=float, default=480.0,
                   help="start no new model after this many seconds (default 480)")
    p.add_argument("--kernels-dir", type=Path,
                   help="the hub kernels' cache (FP8, MXFP4), as LLMUX_KERNELS_DIR")
    p.add_argument("--cpu-only", action="store_true", help="the dry run, on the CPU")
    p.add_argument("--context", type=int,
                   help="the context to drive (default: the fitted one; --cpu-only: 256)")
    p.add_argument("--no-card-limit", action="store_true",
                   help="load plans that do not fit the emulated card, uncapped")
    p.add_argument("--audio-seconds", type=float,
                   help="audio to transcribe (default: the longest chunk, 35 s; --cpu-only: 1)")
    args = p.parse_args(argv)
    if args.cpu_only and not args.context:
        args.context = 256
    if args.audio_seconds is None:
        from llmux_transformers.estimate import ASR_CHUNK_SECONDS

        args.audio_seconds = 1.0 if args.cpu_only else float(ASR_CHUNK_SECONDS)
    return args


def run(args) -> dict:
    import torch

    from .production_shapes import build_all

    started = time.perf_counter()
    deadline = started + args.budget_s
    cuda = torch.cuda.is_available() and not args.cpu_only
    device = "cuda" if cuda else "cpu"
    if args.kernels_dir:
        os.environ["LLMUX_KERNELS_DIR"] = str(args.kernels_dir)
    names = [n.strip() for n in (args.only or ",".join(
        CPU_MODELS if args.cpu_only else MODELS)).split(",") if n.strip()]
    report: dict[str, Any] = {"device": device, "torch": torch.__version__, "models": {},
                              "not_measured": []}
    if not cuda and not args.cpu_only:
        report["not_measured"].append("everything: torch sees no CUDA device "
                                      "(--cpu-only is the dry run)")
        return report
    memory = Memory(device)
    models_dir = args.out / "models"
    config, runtimes = production_config(models_dir, args.out)
    usable = config.budget_gb - config.reserve_gb
    report["card"] = {"budget_gb": config.budget_gb, "reserve_gb": config.reserve_gb,
                      "usable_gb": usable}
    if cuda:
        props = torch.cuda.get_device_properties(0)
        report["gpu"] = {"name": props.name, "total_gb": props.total_memory / GiB,
                         "capability": f"{props.major}.{props.minor}"}
        if not args.no_card_limit:
            report["card"]["fraction"] = memory.emulate(usable)
    for name in names:
        if time.perf_counter() > deadline:
            report["not_measured"].append(f"{name}: the time budget was spent")
            continue
        pm = config.physical.get(name)
        if pm is None or not runtimes.has(pm.backend):
            report["models"][name] = {"not_measured": f"not in config/models.yaml: {name}"
                                      if pm is None else f"no {pm.backend} plugin here"}
            continue
        print(f"[gpu_fit] {name}: building at its published shape ...", flush=True)
        try:
            folder = Path(build_all(models_dir, only=[name])[name]["path"])
            if pm.backend == "chatterbox":
                write_conds(folder, 150)
            elif pm.vision:
                stand_in_ids(folder)
            entry = check(name, config, runtimes, device, args, memory)
        except Exception as exc:  # noqa: BLE001  (say so and go on with the next model)
            entry = {"error": f"{type(exc).__name__}: {exc}"}
        entry["seconds"] = round(time.perf_counter() - started, 1)
        report["models"][name] = entry
        print(f"[gpu_fit]   {line(name, entry)}", flush=True)
        _remove(models_dir)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _f(value, spec=".2f") -> str:
    return "-" if value is None else format(value, spec)


def line(name: str, m: dict) -> str:
    if "error" in m:
        return f"{name}: error: {m['error']}"
    if "not_measured" in m and "production_estimate_gb" not in m:
        return f"{name}: not measured: {m['not_measured']}"
    if "not_measured" in m:
        return (f"{name}: production estimate {_f(m['production_estimate_gb'])} GiB at "
                f"{m['fitted_context']}; not measured: {m['not_measured']}")
    peak = m.get("peak") or {}
    return (f"{name}: context {m['run']['asked']}; estimate {_f(m['production_estimate_gb'])} "
            f"(production) / {_f(m['estimate_here_gb'])} ({m['plan_here']}); weights "
            f"{_f(m['weights_gb'])}; peak allocated {_f(peak.get('allocated'))}, reserved "
            f"{_f(peak.get('reserved'))}; estimate/peak {_f(m.get('estimate_over_peak'), '.3f')}"
            f" {m.get('verdict', '(no allocator on the CPU)')}; load {m['load_s']} s, run "
            f"{m['run_s']} s")


def format_report(report: dict) -> str:
    gpu = report.get("gpu")
    head = (f"Production fit on {gpu['name']} ({gpu['total_gb']:.0f} GiB, emulated "
            f"{report['card']['usable_gb']:.1f} GiB usable)" if gpu else
            f"Production fit, dry run on the {report['device']}")
    columns = (f"{'model':26} {'context':>7} {'est prod':>8} {'est here':>8} {'w est':>8} "
               f"{'weights':>8} {'peak res':>8} {'est/peak':>8}  verdict")
    out = [head, columns]
    for name, m in report["models"].items():
        if "error" in m or "not_measured" in m:
            out.append(f"{name:26} {m.get('error') or 'not measured: ' + m['not_measured']}")
            continue
        peak = m.get("peak") or {}
        out.append(f"{name:26} {m['fitted_context'] or '-'!s:>7} "
                   f"{_f(m['production_estimate_gb']):>8} {_f(m['estimate_here_gb']):>8} "
                   f"{_f(m['estimate_parts'].get('weights')):>8} {_f(m['weights_gb']):>8} {_f(peak.get('reserved')):>8} "
                   f"{_f(m.get('estimate_over_peak'), '.3f'):>8}  "
                   f"{m.get('verdict', 'weights only (CPU)')}")
    if report["not_measured"]:
        out.append("Not measured:")
        out += [f"  - {item}" for item in report["not_measured"]]
    out.append(f"({report.get('seconds', 0):.0f} s)")
    return "\n".join(out)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    report = run(args)
    (args.out / "gpu_fit.json").write_text(json.dumps(report, indent=2, default=str))
    print(format_report(report))
    print(f"\nfull report: {args.out / 'gpu_fit.json'}")
    bad = [n for n, m in report["models"].items()
           if "error" in m or m.get("verdict", "").startswith("under")]
    return 1 if bad or not report["models"] else 0


if __name__ == "__main__":
    sys.exit(main())
