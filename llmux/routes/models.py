"""GET /v1/models (every virtual model, loaded or not) and GET /health (no auth)."""

from __future__ import annotations

from aiohttp import web

from ..appstate import CONFIG, MANAGER, RUNTIMES
from ..errors import ModelNotFound
from ..types import VirtualModel

routes = web.RouteTableDef()


def model_json(virtual: VirtualModel, installed: bool, created: int, fit=None) -> dict:
    physical = virtual.physical
    behaviour = {
        k: v
        for k, v in (
            ("thinking", virtual.behaviour.thinking),
            ("reasoning_effort", virtual.behaviour.reasoning_effort),
            ("language", virtual.behaviour.language),
            ("voice", virtual.behaviour.voice),
        )
        if v is not None
    }
    body = {
        "id": virtual.name,
        "object": "model",
        "created": created,
        "owned_by": "llmux",
        "type": physical.type,
        "physical": physical.name,
        "backend": physical.backend,
        "available": installed,
        "capabilities": {"vision": physical.vision, "tools": physical.tools},
        "behaviour": behaviour,
        "description": virtual.description or physical.options.get("description", ""),
    }
    if fit is not None:  # the context it serves on this budget (fitted where it had to be)
        if fit.context is not None:
            body["context_length"] = fit.context
        if fit.problem:
            body["available"] = False
            body["unavailable_reason"] = fit.problem
    return body


def _created(request: web.Request) -> int:
    return int(request.app[CONFIG].directory.stat().st_mtime)


@routes.get("/v1/models")
async def list_models(request: web.Request) -> web.Response:
    config, runtimes = request.app[CONFIG], request.app[RUNTIMES]
    created = _created(request)
    manager = request.app[MANAGER]
    data = [
        model_json(v, runtimes.has(v.physical.backend), created, manager.fit_of(v.physical.name))
        for v in config.virtual.values()
    ]
    return web.json_response({"object": "list", "data": data})


@routes.get("/v1/models/{name}")
async def get_model(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    virtual = request.app[CONFIG].virtual.get(name)
    if virtual is None:
        raise ModelNotFound(f"the model {name!r} does not exist", param="model")
    installed = request.app[RUNTIMES].has(virtual.physical.backend)
    fit = request.app[MANAGER].fit_of(virtual.physical.name)
    return web.json_response(model_json(virtual, installed, _created(request), fit))


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    snapshot = request.app[MANAGER].snapshot()
    runtimes = request.app[RUNTIMES]
    config = request.app[CONFIG]
    body = {
        "status": "ok",
        **snapshot,
        "backends": runtimes.names,
        "models": {"virtual": len(config.virtual), "physical": len(config.physical)},
        # each physical model's size, fitted context and why it cannot be served, if so
        "sizes": {name: fit.to_json() for name in config.physical
                  if (fit := request.app[MANAGER].fit_of(name)) is not None},
        # each model's saved prompt states in host RAM (bytes, limit, entries)
        "prompt_cache": _prompt_caches(config, runtimes),
    }
    return web.json_response(body)


def _prompt_caches(config, runtimes) -> dict:
    out = {}
    for name, model in config.physical.items():
        if runtimes.has(model.backend):
            report = runtimes.get(model.backend).prompt_cache(model)
            if report is not None:
                out[name] = report
    return out
