"""The proxy process: the public API app, the admin app, and their lifecycle.

`serve(source, settings)` loads configurations from the source (not ready
until the first), serves until cancelled or SIGTERM/SIGINT, then drains:
readiness off, idle event streams (MCP notification streams) closed at once,
requests in flight given up to `drain_seconds` to finish; whatever still runs
at that deadline is ended properly (a stream with an OpenAI error event, a
request with a 503 OpenAI error, an MCP stream with the end of its body), and
the process exits.
`ProxyServer` is the same as an async context manager with the bound ports,
for tests and embedding.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Sequence
from functools import partial
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from lockgate.proxy import edge
from lockgate.proxy.accesslog import AccessLog
from lockgate.proxy.batch import disabled as batch_off
from lockgate.proxy.admission import make_slots
from lockgate.proxy.gateway import GATEWAY, Gateway
from lockgate.proxy import mcp
from lockgate.proxy.cache.admin import purge_handler
from lockgate.proxy.health_metrics import HealthCollector
from lockgate.proxy.internal import embedding
from lockgate.proxy.handlers import add_routes, fallback
from lockgate.proxy.pipeline import STEPS, StepFactory
from lockgate.proxy.quota import QuotaService, make_quota_service
from lockgate.proxy.quota import metrics as quota_metrics
from lockgate.proxy.settings import McpSettings, ProxySettings
from lockgate.proxy.source import ConfigSource
from lockgate.proxy.streams import OPEN_REQUESTS

if TYPE_CHECKING:
    from lockgate.proxy.batch import BatchService
    from lockgate.proxy.tracing.tracer import Tracing

__all__ = ["ProxyServer", "ProxySettings", "build_admin_app", "build_app", "run", "serve", "tune_gc"]

log = logging.getLogger("lockgate.proxy")

CLOSE_SECONDS = 2.0  # after the drain: for handlers the deadline ended to write their last bytes


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(value), content_type="application/json")


def build_app(gateway: Gateway, mcp_settings: McpSettings | None = None,
              batch: BatchService | None = None) -> web.Application:
    app = web.Application(client_max_size=gateway.max_body_bytes)
    app[GATEWAY] = gateway
    app[OPEN_REQUESTS] = gateway.open_requests
    edge.install(app)
    add_routes(app)
    if batch is not None:  # its modules (and the Redis client) load only when it is on
        from lockgate.proxy.batch import BATCH
        from lockgate.proxy.batch import handlers as batch_handlers
        app[BATCH] = batch
        batch_handlers.add_routes(app)
    else:
        batch_off.add_routes(app)
    mcp.install(app, settings=mcp_settings or McpSettings())  # the MCP routes, before the catch-all
    app.router.add_route("*", "/{tail:.*}", fallback)
    return app


def build_admin_app(gateway: Gateway) -> web.Application:
    app = web.Application()
    app[GATEWAY] = gateway
    edge.install(app)

    async def healthz(_: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        if gateway.ready:
            return _json({"status": "ready"})
        reason = "draining" if gateway.draining else "no configuration loaded yet"
        return _json({"status": "not ready", "reason": reason}, 503)

    async def metrics(_: web.Request) -> web.Response:
        body = gateway.metrics.exposition() + quota_metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})

    async def config(_: web.Request) -> web.Response:
        snapshot = gateway.snapshot
        if snapshot is None:
            return _json({"hash": None, "credentialsHash": None, "loadedAt": None}, 503)
        return _json({"hash": snapshot.config.hash, "credentialsHash": snapshot.credentials_hash,
                      "loadedAt": snapshot.loaded_at.isoformat()})

    async def usage(_: web.Request) -> web.Response:
        snapshot = gateway.snapshot  # every key of the loaded config, not only those seen by this replica
        return _json(await gateway.quota.usage(list(snapshot.config.keys) if snapshot is not None else None))

    async def budgets(_: web.Request) -> web.Response:
        snapshot = gateway.snapshot  # the team Budgets of the loaded config: spend and what is left this month
        return _json(await gateway.quota.budget_usage(list(snapshot.config.budgets) if snapshot is not None else []))

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/config", config)
    app.router.add_get("/usage", usage)
    app.router.add_get("/budgets", budgets)
    if gateway.deps.cache is not None:
        app.router.add_post("/cache/purge", purge_handler(gateway.deps.cache))
    return app


class ProxyServer:
    """A running proxy: `async with ProxyServer(source, settings) as server: server.port ...`."""

    def __init__(self, source: ConfigSource, settings: ProxySettings, quota: QuotaService | None = None,
                 steps: Sequence[StepFactory] = STEPS) -> None:
        self.source = source
        self.settings = settings
        quota = quota or make_quota_service(settings.quota_store, settings.quota_fail_mode, settings.replicas_hint,
                                            settings.state_dir, ca_file=settings.quota_store_ca)
        self.gateway = Gateway(settings.gateway_name, quota, max_body_bytes=settings.max_body_bytes,
                               access_log=AccessLog(settings.access_log),
                               default_output_reservation=settings.default_output_reservation, steps=steps,
                               upstream=settings.upstream, slots=make_slots(settings.quota_store, settings.slot_lease,
                                                                            settings.quota_store_ca),
                               tracing=_tracing(settings), cache=settings.cache)
        self.batch: BatchService | None = None
        if settings.batch.enabled:
            from lockgate.proxy.batch import BatchService
            self.batch = BatchService(settings.batch, self.gateway)
        if self.gateway.deps.cache is not None:
            self.gateway.deps.cache.embed = partial(embedding, self.gateway)
        self._apply_failures = 0
        self.gateway.metrics.registry.register(HealthCollector(
            settings.gateway_name, lambda: self.gateway.snapshot, self.gateway.deps.outliers,
            lambda: self._apply_failures + getattr(self.source, "load_failures", 0)))
        self._runners: list[web.AppRunner] = []
        self._sites: list[web.BaseSite] = []
        self._loader: asyncio.Task[None] | None = None
        self._loaded = asyncio.Event()
        self.port = 0
        self.admin_port = 0

    async def start(self) -> None:
        self._loader = asyncio.create_task(self._load())
        settings = self.settings
        for admin, app, port in ((False, build_app(self.gateway, settings.mcp, self.batch), settings.port),
                                 (True, build_admin_app(self.gateway), settings.admin_port)):
            # handler_cancellation: a client that disconnects cancels its handler, and so its upstream request.
            # The drain has waited already when the runners stop: they only let the last bytes out.
            runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=CLOSE_SECONDS)
            await runner.setup()
            site: web.BaseSite
            if admin and settings.admin_path:  # a worker's admin app, for its supervisor
                site = web.UnixSite(runner, settings.admin_path)
            else:  # several workers share the public port (SO_REUSEPORT)
                site = web.TCPSite(runner, settings.host, port, reuse_address=True,
                                   reuse_port=settings.reuse_port or None)
            await site.start()
            self._runners.append(runner)
            self._sites.append(site)
        self.port = _bound_port(self._runners[0])
        if self.batch is not None:
            self.batch.start()
        self.admin_port = _bound_port(self._runners[1])
        log.info("serving on %s:%d, admin on %s:%d", self.settings.host, self.port, self.settings.host,
                 self.admin_port)

    async def _load(self) -> None:
        async for snapshot in self.source.updates():
            try:
                compiled = await self.gateway.apply(snapshot, datetime.now(timezone.utc))
            except Exception:  # a config that cannot compile must not stop serving the last good one
                self._apply_failures += 1
                log.exception("configuration %s could not be loaded; keeping the previous one",
                              snapshot.config.hash[:12])
                continue
            log.info("configuration %s loaded", compiled.config.hash[:12])
            self._loaded.set()

    async def wait_ready(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._loaded.wait(), timeout)

    async def drain(self) -> None:
        """Readiness off and idle streams closed; then wait (up to drain_seconds) for requests in
        flight to finish, and end properly whatever still runs at the deadline."""
        gateway = self.gateway
        gateway.draining = True
        if self.batch is not None:  # its chunks go back to the queue, for the other replicas
            await self.batch.stop()
        open_requests = gateway.open_requests
        open_requests.end(idle_only=True)
        await open_requests.wait_until(lambda: gateway.in_flight <= 0 and open_requests.busy == 0,
                                       self.settings.drain_seconds)
        ended = open_requests.end(idle_only=False)
        if ended:
            log.warning("drain deadline (%gs) passed: ended %d request(s) still running",
                        self.settings.drain_seconds, ended)
        await open_requests.wait_until(lambda: open_requests.running == 0, CLOSE_SECONDS)

    async def stop(self) -> None:
        if self._loader is not None:
            self._loader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._loader
            self._loader = None
        if self.batch is not None:
            await self.batch.close()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners = []
        await self.gateway.close()

    async def __aenter__(self) -> ProxyServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _tracing(settings: ProxySettings) -> Tracing | None:
    if not settings.tracing.enabled:
        return None
    from lockgate.proxy.tracing.tracer import Tracing  # the SDK, loaded only when tracing is on

    return Tracing(settings.tracing)


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    return 0


GC_THRESHOLDS = (20_000, 50, 100)  # young-generation size and older-generation ratios


def tune_gc() -> None:
    """Garbage collection tuned for a long-running proxy process (call once it has started).

    With CPython's defaults a busy proxy spends about a fifth of its CPU in the cyclic collector:
    every few dozen requests a young collection, and now and then a full one that walks every
    object the process ever made (modules, schemas, the config). Objects alive at startup are
    frozen out of collection, and young collections run once per 20k surviving allocations
    rather than 700. Reference counting still frees almost everything at once; this only spaces
    out the hunt for cycles. Process-wide, so only the process entry points call it.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(source: ConfigSource, settings: ProxySettings) -> None:
    """Serve until cancelled, or until SIGTERM/SIGINT (then drain and return)."""
    server = ProxyServer(source, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        await server.start()
        tune_gc()
        await stop.wait()
        log.info("stopping: draining requests in flight")
        await server.drain()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await asyncio.shield(server.stop())


def run(source: ConfigSource, settings: ProxySettings) -> None:
    """Run `serve` on uvloop (when installed) until it returns."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(source, settings))
    else:
        uvloop.run(serve(source, settings))
