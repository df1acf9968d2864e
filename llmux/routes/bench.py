"""``POST /v1/admin/bench``: ``llmux bench`` inside the process that owns the GPU. Admin keys.

Body: ``{"model": NAME, "device": "cpu"|"cuda"|"both", "runs": 3, "max_tokens": 64}``.

- The GPU half runs on the model as the server serves it: under a normal lease from the
  scheduler (which loads it, evicting by the VRAM budget as for any request), so the VRAM
  ledger stays true. Requests to the same model meanwhile share it and slow the figures.
- The CPU half runs in a process of its own (``llmux bench --standalone --device cpu`` on
  this server's config: a CPU copy loaded, measured on every core, unloaded). In this
  process the served models' threads hold OpenMP teams of the same runtimes, and with more
  OpenMP threads than CPUs libgomp nearly stops spinning in every team: a CPU copy measured
  here would run throttled (a second team cut llama.cpp's decode by 16% on 2 cores) and
  inflate the speed-up.
- Without a GPU the CPU half is measured and the GPU half says why it was not.
- A client that leaves cancels the runs (every ``infer`` gets the bench's cancellation), and
  the handler still waits for the model's thread (:func:`~llmux.bridge.run_to_completion`):
  the lease outlives the work that uses it. The CPU half's process is killed.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from typing import Any

from aiohttp import web

from ..appstate import CHAT_FORMATS, CONFIG, MANAGER, api_key_of
from ..bridge import run_to_completion
from ..measure import DEVICES, measure, result_of
from ..errors import InvalidRequest, ModelNotFound, PermissionDenied
from ..types import Cancellation
from .common import read_json

routes = web.RouteTableDef()


@routes.post("/v1/admin/bench")
async def bench(request: web.Request) -> web.Response:
    key = api_key_of(request)
    if key is None or not key.admin:
        raise PermissionDenied("the admin API needs a key with 'admin: true' in api_keys.yaml")
    app = request.app
    body = await read_json(request, 1)
    if not isinstance(body, dict):
        raise InvalidRequest("send a JSON object: {\"model\": NAME, \"device\": \"both\"}")
    name, device = body.get("model"), body.get("device", "both")
    runs, max_tokens = body.get("runs", 3), body.get("max_tokens", 64)
    if not isinstance(device, str) or device not in DEVICES:
        raise InvalidRequest(f"device must be one of {', '.join(DEVICES)}", param="device")
    for field, value, top in (("runs", runs, 20), ("max_tokens", max_tokens, 4096)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
            raise InvalidRequest(f"{field} must be an integer from 1 to {top}", param=field)
    config = app[CONFIG]
    if isinstance(name, str) and name in config.virtual and name not in config.physical:
        name = config.virtual[name].physical.name
    if not isinstance(name, str) or name not in config.physical:
        raise ModelNotFound(f"no model {name!r} (physical models: "
                            f"{', '.join(sorted(config.physical))})", param="model")
    model = config.physical[name]
    formats = app[CHAT_FORMATS]
    chat_format = formats.get(model.chat_format) if formats and model.chat_format else None
    kw = {"chat_format": chat_format, "runs": runs, "max_tokens": max_tokens}
    manager = app[MANAGER]
    cancel = Cancellation()
    gpu = manager.gpu
    found = repr(gpu) if not gpu.available else "NVIDIA GPU (the server's)"
    halves: dict[str, dict] = {}
    for dev in DEVICES[device]:
        if dev == "cuda":
            if not gpu.available:
                halves[dev] = {"device": dev, "skipped": f"no GPU: {getattr(gpu, 'reason', '')}"}
                continue
            async with manager.lease(name) as lease:
                result = await run_to_completion(lease.executor, functools.partial(
                    measure, _Cancellable(lease.backend, cancel), model, lease.handle, **kw),
                    cancel)
            halves[dev] = {"device": "cuda (as served)", **result}
        else:
            halves[dev] = await _cpu_half(config, model.name, runs, max_tokens)
    return web.json_response(result_of(model, halves, found, "server"))


async def _cpu_half(config, name: str, runs: int, max_tokens: int) -> dict:
    """``llmux bench --standalone --device cpu`` on this server's config, in a process of
    its own (killed if the client leaves); its CPU half, or why there is none."""
    argv = [sys.executable, "-m", "llmux", "--log-level", "WARNING", "bench", name,
            "--standalone", "--device", "cpu", "--config", str(config.directory),
            "--runs", str(runs), "--max-tokens", str(max_tokens), "--json"]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await proc.communicate()
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        raise
    try:
        half = json.loads(out)["devices"]["cpu"]
    except (ValueError, KeyError, TypeError):
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        return {"device": "cpu", "error": f"llmux bench (CPU half) exited with "
                                          f"{proc.returncode}: {' / '.join(tail)}"}
    return {**half, "process": "its own: llmux bench --standalone --device cpu",
            "pid": proc.pid}


class _Cancellable:
    """The backend as the measuring functions see it: every ``infer`` gets the bench's
    cancellation, so a client that leaves stops the runs (each then ends at once)."""

    __slots__ = ("backend", "cancel")

    def __init__(self, backend: Any, cancel: Cancellation) -> None:
        self.backend, self.cancel = backend, cancel

    def infer(self, model: Any, handle: Any, request: Any, cancel: Any) -> Any:
        return self.backend.infer(model, handle, request, self.cancel)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)
