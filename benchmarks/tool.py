"""5. ``llmux bench`` (TST-020/021/022): run the admin tool both ways it works — standalone
(no server owns the GPU) and through a running server's ``POST /v1/admin/bench`` — on the
benchmark GGUF (chat: TTFT, decode tokens/s) and an echo TTS model (real-time factor), and
put its CPU figures, GPU figures and speed-up in the table. Without a GPU it reports the CPU
half and says that the GPU half was not measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .gguf_model import SMOKE_SHAPE, Shape, build_gguf
from .harness import ADMIN_KEY, REPO, Row, Section, free_port, plugin_installed, write_llmux_config


def _bench_cli(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "llmux", "--log-level", "WARNING", "bench",
                          *args, "--json"], cwd=REPO, capture_output=True, text=True,
                         timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"llmux bench {' '.join(args)} failed ({out.returncode}):\n"
                           f"{out.stderr[-2000:]}")
    return json.loads(out.stdout)


async def _through_server(config_dir: Path, model: str, runs: int, max_tokens: int) -> dict:
    """Serve the config in this process (with the bench route) and run the CLI against it."""
    import asyncio

    from aiohttp import web

    from llmux.app import create_app
    from llmux.config import load_config
    from llmux.plugins import get_plugin_manager
    from llmux.runtime import Runtimes

    pm = get_plugin_manager()
    runtimes = Runtimes(pm)
    app = create_app(load_config(config_dir, runtimes), pm, runtimes=runtimes)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        return await asyncio.to_thread(
            _bench_cli, model, "--url", f"http://127.0.0.1:{port}", "--key", ADMIN_KEY,
            "--runs", str(runs), "--max-tokens", str(max_tokens))
    finally:
        await runner.cleanup()


def _rows(section: Section, label: str, result: dict) -> None:
    chat = result["type"] == "llm"
    unit, key = ("tok/s", "decode_tps") if chat else ("RTF", "rtf")
    cpu, gpu = result["devices"].get("cpu", {}), result["devices"].get("cuda", {})
    why = gpu.get("skipped") or gpu.get("error") or ""
    metric = "decode tok/s" if chat else "synthesis s / audio s"
    section.rows.append(Row("bench_tool", f"{label} {result['model']}: {metric}, GPU vs CPU",
                            gpu.get(key), cpu.get(key), "CPU", unit, result.get("speedup"),
                            note=("GPU not measured: " + why) if why else "ratio = speed-up"))
    if chat:
        section.rows.append(Row("bench_tool", f"{label} {result['model']}: TTFT, GPU vs CPU",
                                gpu.get("ttft_ms"), cpu.get("ttft_ms"), "CPU", "ms",
                                None, note="GPU not measured" if why else ""))


async def run(work: Path, smoke: bool) -> Section:
    section = Section("bench_tool")
    runs, max_tokens = (1, 8) if smoke else (3, 64)
    physical = {"bench-tts": {"type": "tts", "backend": "echo", "path": "tts", "vram_gb": 0.5}}
    models = ["bench-tts"]
    if plugin_installed("llamacpp"):
        gguf = work / "llama-bench" / "bench.gguf"
        if not gguf.exists():
            build_gguf(gguf, SMOKE_SHAPE if smoke else Shape())
        physical["llama-bench"] = {
            "type": "llm", "backend": "llamacpp", "path": "llama-bench", "vram_gb": 0.5,
            "chat_format": "plain",
            "options": {"model_file": "bench.gguf", "n_ctx": 512 if smoke else 2048,
                        "n_threads": 1}}
        models.insert(0, "llama-bench")
    else:
        section.data["missing"] = "the llamacpp plugin: chat measured on nothing"
    # A port nobody listens on, so "standalone" is what the CLI chooses by itself.
    config = write_llmux_config(work / "tool-config", physical, models_dir=str(work),
                                server={"port": free_port()})
    results = {}
    for model in models:
        standalone = _bench_cli(model, "--config", str(config), "--device", "both",
                                "--runs", str(runs), "--max-tokens", str(max_tokens))
        served = await _through_server(config, model, runs, max_tokens)
        results[model] = {"standalone": standalone, "server": served}
        _rows(section, "standalone", standalone)
        _rows(section, "via server", served)
    section.data["results"] = results
    return section
