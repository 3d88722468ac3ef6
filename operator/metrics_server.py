"""`GET /metrics` of the operator on its own port (`--metrics HOST:PORT`)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def parse_address(value: str) -> tuple[str, int]:
    """'HOST:PORT' or ':PORT' (all interfaces); raises ValueError otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"not HOST:PORT: {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


async def serve_metrics(registry: CollectorRegistry, address: str) -> web.AppRunner:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = parse_address(address)
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    return runner
