"""``GET /openapi.json``: the OpenAPI description of these routes, open without a key."""

from __future__ import annotations

from aiohttp import web

from ..openapi import document

routes = web.RouteTableDef()


@routes.get("/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document())
