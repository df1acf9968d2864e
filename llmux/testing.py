"""Helpers for testing llmux and runtime plugins against the real server.

A plugin's tests write a config directory, build a plugin manager with llmux's built-ins and
the plugin under test, and serve the real app on a loopback port, then drive it with any
HTTP client (the official ``openai`` package, say)::

    from llmux.testing import plugin_manager, serve, write_config

    pm = plugin_manager(my_plugin)
    config = load_config(write_config(tmp_path, models), Runtimes(pm))
    async with serve(create_app(config, pm)) as base_url:
        ...

``ThreadedServer`` does the same on a loop of its own, for synchronous clients and
session-scoped fixtures.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import yaml

TEST_KEY = "sk-llmux-test-0000000000000000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(directory: Path, models: dict, keys: list[dict] | None = None) -> Path:
    """Write ``models.yaml`` and ``api_keys.yaml`` (default: one key, :data:`TEST_KEY`)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "models.yaml").write_text(yaml.safe_dump(models, sort_keys=False))
    keys = keys if keys is not None else [{"name": "test", "key": TEST_KEY}]
    (directory / "api_keys.yaml").write_text(yaml.safe_dump({"keys": keys}))
    return directory


def plugin_manager(*plugins: Any, **named: Any):
    """llmux's built-ins plus exactly the given plugins (installed ones stay out)."""
    from .plugins import get_plugin_manager

    pm = get_plugin_manager(load_entry_points=False)
    for plugin in plugins:
        pm.register(plugin)
    for name, plugin in named.items():
        pm.register(plugin, name=name)
    return pm


async def _start(app) -> tuple[Any, int]:
    from aiohttp import web

    # As `llmux serve` runs it: a client that disconnects cancels its handler.
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


@asynccontextmanager
async def serve(app) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 in the running loop; yields its base URL."""
    runner, port = await _start(app)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class ThreadedServer:
    """The app on 127.0.0.1, served by an event loop in its own thread."""

    def __init__(self, app) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="llmux-test")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.runner, self.port = self.loop.run_until_complete(_start(self.app))
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> "ThreadedServer":
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the llmux app did not start within 30 s")
        return self

    def call(self, coro, timeout: float = 60):
        """Run ``coro`` on the server's loop (e.g. to look at the model manager)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self, timeout: float = 60) -> None:
        self.call(self.runner.cleanup(), timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def __enter__(self) -> "ThreadedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def sine_wav(seconds: float, rate: int = 16000, freq: float = 440.0) -> bytes:
    """A mono 16-bit WAV of a sine tone: audio whose duration a test knows exactly."""
    import io
    import wave

    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return out.getvalue()


class ServeProcess:
    """``llmux serve`` in a subprocess, as a user starts it; see :func:`serve_process`."""

    def __init__(self, proc, url: str, log: Path) -> None:
        self.proc = proc
        self.url = url
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serve_process(config_dir, log: Path, *, env: dict | None = None, timeout: float = 60,
                  cwd=None):
    """Start ``python -m llmux serve --config config_dir`` on a free port, wait until
    ``/health`` answers, yield a :class:`ServeProcess`, and stop it (SIGTERM) afterwards.
    Its output goes to ``log``."""
    import json
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(log)
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmux", "serve", "--config", str(config_dir),
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd, env=env if env is not None else dict(os.environ),
            stdout=sink, stderr=subprocess.STDOUT,
        )
    server = ServeProcess(proc, url, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=5) as resp:
                    if json.load(resp).get("status") == "ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"llmux serve did not answer /health:\n{server.output()[-5000:]}")
            time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def summary_totals(metrics_text: str, metric: str, by: str,
                   **labels: str) -> dict[str, tuple[float, float]]:
    """From ``GET /metrics``' text, a Prometheus summary's ``(sum, count)`` per value of the
    label ``by``, over the samples whose other labels match ``labels`` (parsed with
    prometheus_client's own parser)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != metric:
            continue
        for sample in family.samples:
            kind = {f"{metric}_sum": 0, f"{metric}_count": 1}.get(sample.name)
            if kind is None or any(sample.labels.get(k) != v for k, v in labels.items()):
                continue
            out.setdefault(sample.labels[by], [0.0, 0.0])[kind] += sample.value
    return {key: (total, count) for key, (total, count) in out.items()}


def counter_value(metrics_text: str, metric: str, **labels: str) -> float:
    """A Prometheus counter's value (``metric`` without ``_total``) summed over the samples
    whose labels match ``labels``; 0 when there are none."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(sample.value for family in text_string_to_metric_families(metrics_text)
               if family.name == metric for sample in family.samples
               if sample.name == f"{metric}_total"
               and all(sample.labels.get(k) == v for k, v in labels.items()))
