"""The OpenMP settings of this process: how llama.cpp's and torch's CPU threads wait.

libgomp reads them once, when it loads (at a runtime's first model load), so they belong to
the process from its start. ``llmux serve`` sets none of its own: the libraries' defaults
are the fastest on a machine whose cores are free (``OMP_WAIT_POLICY=PASSIVE`` halves
llama.cpp's CPU decode, each of ggml's many barriers per token then sleeps and wakes), and
an operator who shares the cores with other work can set them (docs/benchmarks.md).
"""

from __future__ import annotations

import os
from typing import Mapping

VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "OMP_PROC_BIND")
PREFIXES = ("OMP_", "GOMP_", "KMP_")


def settings(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each variable's value in ``env`` (default: this process), "default" where unset."""
    env = os.environ if env is None else env
    return {name: env.get(name, "default") for name in VARIABLES}


def without(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without any OpenMP variable: a process started with it runs the defaults."""
    return {k: v for k, v in env.items() if not k.startswith(PREFIXES)}
