"""The admin API's purge: `POST /cache/purge?route=NS/NAME`, `?namespace=NS`, `?consumer=NAME` (alone, or with
a route or namespace to narrow it). Answers `{"purged": N}`, the entries dropped (this replica's store, or
the shared Redis)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from lockgate.api.meta import DNS_LABEL, DNS_SUBDOMAIN
from lockgate.proxy.cache.service import CacheService
from lockgate.proxy.cache.store import StoreUnavailable

Handler = Callable[[web.Request], Awaitable[web.Response]]
_ROUTE = re.compile(DNS_LABEL[:-1] + "/" + DNS_SUBDOMAIN[1:])


def _error(status: int, message: str) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def purge_handler(cache: CacheService) -> Handler:
    async def purge(request: web.Request) -> web.Response:
        route = request.query.get("route") or None
        namespace = request.query.get("namespace") or None
        consumer = request.query.get("consumer") or None
        if route is None and namespace is None and consumer is None:
            return _error(400, "Say what to purge: route=NAMESPACE/NAME, namespace=NAME or consumer=NAME.")
        if route is not None and not _ROUTE.match(route):
            return _error(400, "route must be NAMESPACE/NAME.")
        if namespace is not None and not re.match(DNS_LABEL, namespace):
            return _error(400, "namespace must be a namespace name.")
        try:
            purged = await cache.purge(route, namespace, consumer)
        except StoreUnavailable:
            return _error(503, "The cache store is unavailable.")
        return web.Response(body=orjson.dumps({"purged": purged}), content_type="application/json")

    return purge
