"""``llmux bench MODEL``: the same inference on CPU and on GPU, and the speed-up.

One process owns the GPU (ARCH-001), so when a server is running the benchmark runs inside
it, through ``POST /v1/admin/bench`` (an admin key): ``--url``/``--key``, or found from the
config's host, port and first admin key. When no server answers, it runs standalone in this
process. Without a GPU it measures the CPU half and says so.

Both measure through :mod:`llmux.measure` (what is measured, and at which settings).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from ..measure import DEVICES, load_and_measure, result_of

log = logging.getLogger("llmux.bench")



def register(sub) -> None:
    p = sub.add_parser(
        "bench", help="the same inference on CPU and GPU, and the speed-up",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a physical (or virtual) model name from models.yaml")
    p.add_argument("--device", choices=sorted(DEVICES), default="both",
                   help="which half to measure (default: both)")
    p.add_argument("--config", metavar="DIR",
                   help="config directory (default: $LLMUX_CONFIG_DIR, then ./config)")
    p.add_argument("--url", help="a running llmux server (default: the config's host:port "
                                 "if one answers there, else standalone)")
    p.add_argument("--key", help="an admin API key for --url (default: the config's first "
                                 "admin key)")
    p.add_argument("--standalone", action="store_true",
                   help="never use a running server (only when none owns the GPU)")
    p.add_argument("--runs", type=int, default=3, help="measured runs per device (default 3)")
    p.add_argument("--max-tokens", type=int, default=64,
                   help="tokens generated per chat run (default 64)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


# --------------------------------------------------------------------------- measuring


def gpu_status() -> tuple[bool, str]:
    """Whether a CUDA GPU is usable here, and what was found (no torch import)."""
    import shutil
    import subprocess

    from ..scheduler.gpu import probe_gpu

    gpu = probe_gpu()
    if gpu.available:
        mem = gpu.memory()
        return True, f"NVIDIA GPU, {mem.total_gb:.0f} GB" if mem else "NVIDIA GPU"
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                 timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                return True, out.stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError):
            pass
    return False, f"no GPU ({getattr(gpu, 'reason', 'none found')})"


# --------------------------------------------------------------------------- command


def run(args: argparse.Namespace) -> int:
    from ..config import load_config, resolve_config_dir
    from ..errors import ConfigError, LlmuxError

    directory = resolve_config_dir(args.config)
    config = None
    try:
        from ..plugins import get_plugin_manager
        from ..runtime import Runtimes

        pm = get_plugin_manager()
        runtimes = Runtimes(pm)
        config = load_config(directory, runtimes)
    except ConfigError as exc:
        if not args.url:
            log.error("invalid configuration in %s:", directory)
            for line in exc.errors:
                log.error("  %s", line)
            return 1
    try:
        url, key = _server(args, config)
        if url:
            result = _remote(url, key, args)
        else:
            result = _standalone(config, pm, runtimes, args)
    except LlmuxError as exc:
        log.error("%s", exc.message)
        return 1
    print(json.dumps(result, indent=2) if args.json else format_result(result))
    return 0


def _server(args, config) -> tuple[str | None, str | None]:
    """The running server to go through, if any, and the admin key for it."""
    from ..errors import InvalidRequest

    key = args.key or next((k.key for k in (config.keys if config else ()) if k.admin), None)
    if args.url:
        if not key:
            raise InvalidRequest("--url needs an admin key: pass --key or mark a key "
                                 "'admin: true' in api_keys.yaml")
        return args.url.rstrip("/"), key
    if args.standalone or config is None:
        return None, None
    host = config.server.host if config.server.host not in ("0.0.0.0", "::") else "127.0.0.1"
    url = f"http://{host}:{config.server.port}"
    if not _answers(url + "/health"):
        return None, None
    if not key:
        raise InvalidRequest(
            f"a llmux server runs at {url} and owns the GPU: benchmark through it with an "
            "admin key (--key, or 'admin: true' on a key in api_keys.yaml), or stop it")
    log.info("a server answers at %s: benchmarking through its admin route", url)
    return url, key


def _answers(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _remote(url: str, key: str, args) -> dict:
    import urllib.error
    import urllib.request

    from ..errors import LlmuxError

    body = json.dumps({"model": args.model, "device": args.device, "runs": args.runs,
                       "max_tokens": args.max_tokens}).encode()
    req = urllib.request.Request(url + "/v1/admin/bench", data=body, method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=3600) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = str(exc)
        if exc.code == 404 and "admin/bench" in message or exc.code == 404 and not message:
            message = f"{url} has no /v1/admin/bench route (an older llmux?)"
        raise LlmuxError(f"{url}: {exc.code}: {message}") from None
    except OSError as exc:
        raise LlmuxError(f"cannot reach {url}: {exc}") from None


def _standalone(config, pm, runtimes, args) -> dict:
    from ..chatformats import ChatFormats
    from ..errors import ModelNotFound

    name = args.model
    if name in config.virtual and name not in config.physical:
        name = config.virtual[name].physical.name
    if name not in config.physical:
        raise ModelNotFound(f"no model {args.model!r} (physical models: "
                            f"{', '.join(sorted(config.physical))})")
    model = config.physical[name]
    backend = runtimes.get(model.backend)
    chat_format = None
    if model.chat_format:
        chat_format = ChatFormats.from_plugin_manager(pm).get(model.chat_format)
    has_gpu, found = gpu_status()
    halves: dict[str, dict] = {}
    for device in DEVICES[args.device]:
        if device == "cuda" and not has_gpu:
            halves[device] = {"device": device, "skipped": found}
            continue
        try:
            halves[device] = load_and_measure(backend, model, device,
                                              chat_format=chat_format, runs=args.runs,
                                              max_tokens=args.max_tokens)
        except Exception as exc:
            log.debug("bench on %s failed", device, exc_info=True)
            halves[device] = {"device": device, "error": f"{type(exc).__name__}: {exc}"}
    return result_of(model, halves, found, "standalone")


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_result(result: dict) -> str:
    lines = [f"llmux bench {result['model']} ({result['backend']}, {result['type']}), "
             f"{result['where']}; GPU: {result['gpu']}"]
    chat = result["type"] == "llm"
    head = ("device", "load s", "TTFT ms", "decode tok/s") if chat else (
        "device", "load s", "seconds", "audio s", "RTF")
    lines.append("  ".join(f"{h:>12}" for h in head))
    for device, half in result["devices"].items():
        if "skipped" in half or "error" in half:
            what = "not measured: " + half.get("skipped", half.get("error", ""))
            lines.append(f"{device:>12}  {what}")
            continue
        if chat:
            cells = (device, _fmt(half.get("load_s"), ".2f"), _fmt(half.get("ttft_ms"), ".1f"),
                     _fmt(half.get("decode_tps"), ".1f"))
        else:
            cells = (device, _fmt(half.get("load_s"), ".2f"), _fmt(half.get("seconds"), ".3f"),
                     _fmt(half.get("audio_seconds"), ".2f"), _fmt(half.get("rtf"), ".3f"))
        lines.append("  ".join(f"{c:>12}" for c in cells))
    for device, half in result["devices"].items():
        settings = half.get("settings")
        if settings:
            omp = ", ".join(f"{k} {v}" for k, v in settings["openmp"].items())
            lines.append(f"{device:>12}  ran with threads {settings['threads']}; {omp}")
    if result.get("speedup") is not None:
        lines.append(f"GPU speed-up over CPU: {result['speedup']:.1f}x")
    else:
        only = [d for d, h in result["devices"].items() if "skipped" not in h
                and "error" not in h]
        lines.append("GPU speed-up: not measured"
                     + (f" (measured {', '.join(only)} only)" if only else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    from . import main

    sys.exit(main(["bench", *sys.argv[1:]]))
