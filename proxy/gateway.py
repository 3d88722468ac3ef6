"""The data plane's state at `app[GATEWAY]`: the current snapshot and the pipeline built for it.

- `gateway.snapshot`: the current `CompiledSnapshot`; `gateway.pipeline`: the
  request pipeline built with it (`lockgate.proxy.pipeline`). A config swap
  replaces both; a request keeps the pair it began with.
- `gateway.begin(...) -> Context` / `await gateway.finish(ctx)`: a request's
  context (id, snapshot, pipeline) and, at its end, the pipeline's finish
  hooks (settle, metrics, access log) and the in-flight count.
- `gateway.deps`: what the steps were given (quota, metrics, balancers,
  outliers, the upstream pool, the access log, the response cache).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web

from lockgate.proxy.accesslog import AccessLog
from lockgate.proxy.admission import Slots
from lockgate.proxy.balancing.metrics import BalancerCollector
from lockgate.proxy.cache import CacheSettings, make_cache_service
from lockgate.proxy.errors import ApiError
from lockgate.proxy.estimate import DEFAULT_OUTPUT_RESERVATION
from lockgate.proxy.metrics import make_metrics
from lockgate.proxy.pipeline import Context, Deps, Kind, Pipeline, StepFactory, build_pipeline
from lockgate.proxy.pipeline.build import STEPS
from lockgate.proxy.quota import QuotaService
from lockgate.proxy.snapshot import CompiledSnapshot, compile_snapshot
from lockgate.proxy.source import Snapshot
from lockgate.proxy.streams import OpenRequests
from lockgate.proxy.upstream import UpstreamPool, UpstreamSettings

if TYPE_CHECKING:
    from lockgate.proxy.tracing.tracer import Tracing


MAX_HOST_LABELS = 1024


class Gateway:
    def __init__(self, name: str, quota: QuotaService, *, max_body_bytes: int = 10 * 1024 * 1024,
                 access_log: AccessLog | None = None,
                 default_output_reservation: int = DEFAULT_OUTPUT_RESERVATION,
                 steps: Sequence[StepFactory] = STEPS, upstream: UpstreamSettings | None = None,
                 slots: Slots | None = None, tracing: Tracing | None = None,
                 cache: CacheSettings | None = None) -> None:
        self.name = name
        self.max_body_bytes = max_body_bytes
        self.metrics = make_metrics(name)
        self.deps = Deps(quota=quota, metrics=self.metrics, access_log=access_log or AccessLog(None),
                         upstreams=UpstreamPool(upstream or UpstreamSettings()),
                         default_output_reservation=default_output_reservation, slots=slots or Slots(),
                         tracing=tracing)
        cache = cache or CacheSettings()
        self.deps.cache = make_cache_service(cache.store, name, self.metrics.registry, cache.memory_bytes,
                                             cache.store_ca)
        self.quota = quota
        self.steps = tuple(steps)
        self.snapshot: CompiledSnapshot | None = None
        self.pipeline: Pipeline | None = None
        self.draining = False
        self.open_requests = OpenRequests()  # what the drain ends at its deadline
        # Host header -> metric label on the current snapshot: clients send a few hosts, each request one.
        self._host_labels: dict[str, str] = {}
        balancers = self.deps.balancers
        self.metrics.registry.register(BalancerCollector(name, balancers.items))
        self.metrics.registry.register(self.deps.choices)

    @property
    def in_flight(self) -> int:
        return self.metrics.in_flight

    @property
    def ready(self) -> bool:
        return self.snapshot is not None and not self.draining

    async def apply(self, snapshot: Snapshot, loaded_at: datetime | None = None) -> CompiledSnapshot:
        """Compile, build the pipeline and swap both in; requests in flight keep theirs."""
        # Off the event loop: a large configuration takes a while to compile, requests keep flowing;
        # what did not change is taken from the current snapshot.
        compiled = await asyncio.to_thread(compile_snapshot, snapshot, loaded_at, self.snapshot)
        await self.deps.balancers.update(compiled.config.providers)
        pipeline = build_pipeline(self.deps, self.steps, compiled)
        self.snapshot, self.pipeline = compiled, pipeline
        self._host_labels = {}
        return compiled

    async def close(self) -> None:
        await self.deps.balancers.close()
        await self.deps.upstreams.close()
        await self.deps.slots.close()
        await self.quota.close()
        if self.deps.cache is not None:
            await self.deps.cache.close()
        self.deps.access_log.close()
        if self.deps.tracing is not None:
            self.deps.tracing.shutdown()  # exports what is still pending

    # --- per request -----------------------------------------------------

    def begin(self, request_id: str, method: str, path: str, host: str, kind: Kind = "openai",
              headers: Mapping[str, str] | None = None) -> Context:
        """A request's context on the current snapshot and pipeline (503 before the first configuration)."""
        snapshot, pipeline = self.snapshot, self.pipeline
        if snapshot is None or pipeline is None:
            raise ApiError(503, "The gateway has no configuration yet.", type="api_error", code="not_ready",
                           error_type="no_upstream")
        label = self._host_labels.get(host)
        if label is None:
            label = host_label(snapshot, host) if host else "*"
            if len(self._host_labels) >= MAX_HOST_LABELS:  # the Host header is the client's: bounded
                self._host_labels.clear()
            self._host_labels[host] = label
        self.metrics.in_flight += 1
        return Context(request_id, snapshot, method, path, label, kind=kind,
                       headers=headers if headers is not None else {}, raw_host=host, pipeline=pipeline)

    async def finish(self, ctx: Context) -> None:
        try:
            assert ctx.pipeline is not None
            await ctx.pipeline.finish(ctx)
        finally:
            self.metrics.in_flight -= 1
            self.open_requests.finished()




def host_label(snapshot: CompiledSnapshot, host: str) -> str:
    """A metric label for the host: a configured host name, or '*' (never free-form client text)."""
    host = host.lower()
    if host in snapshot.exact_hosts:
        return host
    bare = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return bare if bare in snapshot.exact_hosts else "*"


GATEWAY: web.AppKey[Gateway] = web.AppKey("lockgate_gateway", Gateway)
