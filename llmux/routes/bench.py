"""``POST /v1/admin/bench``: ``llmux bench`` inside the process that owns the GPU. Admin keys.

Body: ``{"model": NAME, "device": "cpu"|"cuda"|"both", "runs": 3, "max_tokens": 64}``.

- The GPU half runs on the model as the server serves it: under a normal lease from the
  scheduler (which loads it, evicting by the VRAM budget as for any request), so the VRAM
  ledger stays true. Requests to the same model meanwhile share it and slow the figures.
- The CPU half loads a second copy with ``device="cpu"`` outside the scheduler (it takes no
  VRAM) and unloads it afterwards.
- Without a GPU the CPU half is measured and the GPU half says why it was not.
- A client that leaves cancels the runs (every ``infer`` gets the bench's cancellation), and
  the handler still waits for its worker thread (:func:`~llmux.bridge.run_to_completion`):
  the lease, or the CPU copy, outlives the work that uses it.
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from ..appstate import CHAT_FORMATS, CONFIG, EXECUTOR, MANAGER, RUNTIMES, api_key_of
from ..bridge import run_to_completion
from ..measure import DEVICES, load_and_measure, measure, result_of
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
    executor = app[EXECUTOR]
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
                result = await run_to_completion(lease.executor or executor, functools.partial(
                    measure, _Cancellable(lease.backend, cancel), model, lease.handle, **kw),
                    cancel)
            halves[dev] = {"device": "cuda (as served)", **result}
        else:
            backend = _Cancellable(app[RUNTIMES].get(model.backend), cancel)
            try:
                halves[dev] = await run_to_completion(executor, functools.partial(
                    load_and_measure, backend, model, "cpu", **kw), cancel)
            except Exception as exc:  # the CPU copy may not fit RAM, or the runtime refuses
                halves[dev] = {"device": dev, "error": f"{type(exc).__name__}: {exc}"}
    return web.json_response(result_of(model, halves, found, "server"))


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
