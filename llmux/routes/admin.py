"""Operator control: load and unload a model now, see what is loaded. Admin keys only.

Under ``/v1/admin/`` so the auth middleware covers them; a key without ``admin: true`` in
api_keys.yaml gets a 403.
"""

from __future__ import annotations

from aiohttp import web

from ..appstate import CONFIG, MANAGER, api_key_of
from ..errors import ModelNotFound, PermissionDenied

routes = web.RouteTableDef()


def _require_admin(request: web.Request) -> None:
    key = api_key_of(request)
    if key is None or not key.admin:
        who = f"the key {key.name!r}" if key is not None else "this request"
        raise PermissionDenied(
            f"{who} may not use the admin API: mark a key 'admin: true' in api_keys.yaml"
        )


def _physical(request: web.Request) -> str:
    name = request.match_info["name"]
    config = request.app[CONFIG]
    if name in config.physical:
        return name
    if name in config.virtual:  # accept a virtual name too: it means its physical model
        return config.virtual[name].physical.name
    known = ", ".join(sorted(config.physical))
    raise ModelNotFound(f"no model {name!r} (physical models: {known})", param="name")


@routes.get("/v1/admin/models")
async def list_models(request: web.Request) -> web.Response:
    _require_admin(request)
    return web.json_response(request.app[MANAGER].snapshot())


@routes.post("/v1/admin/models/{name}/load")
async def load_model(request: web.Request) -> web.Response:
    _require_admin(request)
    name = _physical(request)
    manager = request.app[MANAGER]
    await manager.load_now(name)
    return web.json_response({"model": name, "loaded": True, **manager.snapshot()})


@routes.post("/v1/admin/models/{name}/unload")
async def unload_model(request: web.Request) -> web.Response:
    _require_admin(request)
    name = _physical(request)
    manager = request.app[MANAGER]
    was_loaded = await manager.unload_now(name)
    return web.json_response({"model": name, "unloaded": was_loaded, **manager.snapshot()})
