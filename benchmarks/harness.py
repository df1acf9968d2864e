"""What every benchmark section shares: server processes, llmux configs, statistics, the
machine's description, and one table row type.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
USER_KEY = "sk-llmux-bench-user-0000000000"
ADMIN_KEY = "sk-llmux-bench-admin-000000000"
AUTH = {"Authorization": f"Bearer {USER_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    """One line of the table: llmux beside its reference, and the ratio."""

    section: str
    metric: str
    llmux: float | None
    reference: float | None = None
    reference_name: str = ""
    unit: str = ""
    ratio: float | None = None  # llmux / reference, or as the metric defines it
    target: str = ""
    ok: bool | None = None  # whether the target is met; None: no target or not measured
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Section:
    name: str
    rows: list[Row] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None  # why the section could not run (said in the table too)

    def as_dict(self) -> dict:
        return {"rows": [r.as_dict() for r in self.rows], "data": self.data,
                "skipped": self.skipped}


# --------------------------------------------------------------------------- statistics


def median(values) -> float | None:
    values = sorted(values)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def percentile(values, q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    values = sorted(values)
    if not values:
        return None
    pos = (len(values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


# --------------------------------------------------------------------------- machine


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _gpus() -> list[str]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line for line in out.stdout.splitlines() if line.strip()]


def machine() -> dict:
    """What the figures were measured on. Versions come from metadata: nothing is imported."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": affinity,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "memory_gb": _mem_total_gb(),
        "gpus": _gpus(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {d: _version(d) for d in (
            "llmux", "aiohttp", "torch", "transformers", "llama_cpp_python", "gguf",
            "uvicorn", "fastapi", "llmux-llamacpp", "llmux-transformers")},
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--", "llmux", "plugins")),
    }


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class Server:
    """A server in its own process, logging to a file; ``await ready()`` polls a URL."""

    def __init__(self, name: str, argv: list[str], port: int, log_dir: Path,
                 env: dict | None = None, health: str = "/health"):
        self.name = name
        self.argv = argv
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.health = health
        self.log_path = log_dir / f"{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0

    def start(self) -> Server:
        log = open(self.log_path, "ab")
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                     env=self.env, cwd=REPO, start_new_session=True)
        log.close()
        return self

    async def ready(self, session, timeout: float = 60.0, interval: float = 0.005) -> float:
        """Seconds from start() until the health URL answered 200."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            try:
                async with session.get(self.url + self.health) as resp:
                    if resp.status == 200:
                        await resp.read()
                        return time.perf_counter() - self.started_at
            except OSError:
                pass
            await asyncio.sleep(interval)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def rss_mb(self) -> float | None:
        return rss_mb(self.proc.pid) if self.proc else None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def llmux_argv(config_dir: Path, port: int, log_level: str = "INFO") -> list[str]:
    """``llmux serve`` as a user runs it (INFO: one access-log line per request)."""
    return [sys.executable, "-m", "llmux", "--log-level", log_level, "serve",
            "--config", str(config_dir), "--host", "127.0.0.1", "--port", str(port)]


def write_llmux_config(directory: Path, physical: dict, virtual: dict | None = None, *,
                       budget_gb: float = 16, reserve_gb: float = 0.5,
                       models_dir: str = ".", server: dict | None = None) -> Path:
    """A config directory for one benchmark: each physical model gets a virtual model of
    the same name unless ``virtual`` says otherwise."""
    directory.mkdir(parents=True, exist_ok=True)
    virtual = virtual or {name: {"physical": name} for name in physical}
    models = {"models_dir": models_dir, "vram": {"budget_gb": budget_gb,
                                                 "reserve_gb": reserve_gb},
              "server": server or {}, "physical": physical, "virtual": virtual}
    (directory / "models.yaml").write_text(yaml.safe_dump(models, sort_keys=False))
    keys = [{"name": "bench", "key": USER_KEY}, {"name": "bench-admin", "key": ADMIN_KEY,
                                                  "admin": True}]
    (directory / "api_keys.yaml").write_text(yaml.safe_dump({"keys": keys}))
    return directory


def plugin_installed(backend: str) -> bool:
    """Whether an installed plugin provides ``backend`` (asks the entry points, imports
    only the plugin modules, like ``llmux serve`` does)."""
    code = ("import sys; from llmux.plugins import get_plugin_manager; "
            "from llmux.runtime import Runtimes; "
            f"sys.exit(0 if Runtimes(get_plugin_manager()).has({backend!r}) else 1)")
    return subprocess.run([sys.executable, "-c", code], cwd=REPO,
                          capture_output=True).returncode == 0


def backend_option_names(backend: str) -> set[str]:
    code = ("import json; from llmux.plugins import get_plugin_manager; "
            "from llmux.runtime import Runtimes; "
            f"b = Runtimes(get_plugin_manager()).get({backend!r}); "
            "print(json.dumps(sorted(dict(b.info.options_schema).get('properties', {}))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True)
    return set(json.loads(out.stdout)) if out.returncode == 0 else set()
