"""``GET /metrics``: Prometheus text format, open unless ``server.metrics_require_auth``."""

from __future__ import annotations

from aiohttp import web

from ..appstate import CONFIG, METRICS, api_key_of
from ..errors import AuthenticationFailed

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    # The auth middleware authenticates /metrics when the switch is on; this check keeps
    # the route closed even if it is mounted without that middleware.
    if request.app[CONFIG].server.metrics_require_auth and api_key_of(request) is None:
        raise AuthenticationFailed("GET /metrics needs an API key (server.metrics_require_auth)")
    body, content_type = request.app[METRICS].render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response
