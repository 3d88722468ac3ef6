"""The Files and Batch API's paths on a gateway where it is off: a clear 404 in OpenAI's format.

Kept apart from the handlers so that a gateway without the Batch API never loads its Redis client.
"""

from __future__ import annotations

from aiohttp import web

from lockgate.proxy.errors import ApiError
from lockgate.proxy.handlers import envelope
from lockgate.proxy.pipeline import Context

PATHS = ("/v1/files", "/v1/files/{tail:.*}", "/v1/batches", "/v1/batches/{tail:.*}")


async def _off(request: web.Request, ctx: Context) -> web.StreamResponse:
    raise ApiError(404, "The Files and Batch API is not enabled on this gateway.", code="unknown_url",
                   error_type="not_found")


async def _handle(request: web.Request) -> web.StreamResponse:
    return await envelope(request, "openai", _off)


def add_routes(app: web.Application) -> None:
    for path in PATHS:
        app.router.add_route("*", path, _handle)
