"""The proxy's shared state and its internal API, at `app[GATEWAY]`.

Handlers in this package and the MCP module (`lockgate.proxy.mcp`, whose
`install(app)` the server calls when it exists) use only what is listed here:

- `gateway.snapshot`: the current `CompiledSnapshot`. Read it once per request
  and keep using that object; a config swap replaces the attribute, never
  the object a request holds. `begin()` does this for you.
- `gateway.authenticate(snapshot, headers) -> KeyEntry`: the caller's key
  (`entry.key` is the IR `ConsumerKey`); raises `ApiError` (401).
- `gateway.upstreams`: the lean keep-alive pool (`lockgate.proxy.upstream`)
  the LLM forward path posts to.
- `gateway.quota`: the `QuotaService`; `gateway.metrics`: the `Metrics`.
- `gateway.begin(request) -> RequestRecord` / `gateway.finish(record)`: the
  in-flight count, request id, metrics and the access log line of a request.
- `gateway.chat_deltas(entry, body, record=None)`: run an OpenAI chat
  completion through the full pipeline (model checks, alias and provider
  choice, failover, quotas, metrics) and yield the answer's text deltas.
- `ApiError.response(request_id)` renders any error as OpenAI error JSON.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from lockgate.api.ir import Alias, Provider
from lockgate.proxy.accesslog import AccessLog
from lockgate.proxy.auth import authenticate, check_model
from lockgate.proxy.balancing import Balancer, make_balancer
from lockgate.proxy.balancing.metrics import BalancerCollector
from lockgate.proxy.errors import ApiError, model_not_found
from lockgate.proxy.estimate import DEFAULT_OUTPUT_RESERVATION, Estimate, estimate_request
from lockgate.proxy.forward import forward
from lockgate.proxy.metrics import Metrics, make_metrics
from lockgate.proxy.outlier import OutlierDetector
from lockgate.proxy.quota import QuotaService
from lockgate.proxy.record import RequestRecord, observe
from lockgate.proxy.routing import expand_alias, plan
from lockgate.proxy.snapshot import CompiledSnapshot, KeyEntry, OpenAIView, Target, compile_snapshot
from lockgate.proxy.source import Snapshot
from lockgate.proxy.upstream import UpstreamPool

class Gateway:
    def __init__(self, name: str, quota: QuotaService, *, max_body_bytes: int = 10 * 1024 * 1024,
                 access_log: AccessLog | None = None,
                 default_output_reservation: int = DEFAULT_OUTPUT_RESERVATION) -> None:
        self.name = name
        self.default_output_reservation = default_output_reservation  # output tokens reserved without max_tokens
        self.access_log = access_log or AccessLog(None)
        self.quota = quota
        self.max_body_bytes = max_body_bytes
        self.metrics: Metrics = make_metrics(name)
        self.outliers = OutlierDetector()
        self.snapshot: CompiledSnapshot | None = None
        self.draining = False
        self.in_flight = 0
        self.rng = random.Random()
        self._balancers: dict[str, tuple[str, Balancer]] = {}
        self._upstreams: UpstreamPool | None = None
        self.metrics.registry.register(
            BalancerCollector(name, lambda: [(pid, b) for pid, (_, b) in self._balancers.items()]))

    # --- lifecycle -------------------------------------------------------

    @property
    def upstreams(self) -> UpstreamPool:
        if self._upstreams is None:
            self._upstreams = UpstreamPool()
        return self._upstreams

    @property
    def ready(self) -> bool:
        return self.snapshot is not None and not self.draining

    async def apply(self, snapshot: Snapshot, loaded_at: datetime | None = None) -> CompiledSnapshot:
        """Compile and swap in a new configuration; requests in flight keep theirs."""
        compiled = compile_snapshot(snapshot, loaded_at)
        await self._update_balancers(compiled)
        self.snapshot = compiled
        return compiled

    async def _update_balancers(self, compiled: CompiledSnapshot) -> None:
        keep: dict[str, tuple[str, Balancer]] = {}
        for provider in compiled.config.providers:
            if provider.base_url is not None:
                continue
            fingerprint = provider.load_balancing.model_dump_json()
            old = self._balancers.pop(provider.id, None)
            if old is not None and old[0] == fingerprint:
                old[1].update(provider.endpoint_urls())
                keep[provider.id] = old
            else:
                if old is not None:
                    await old[1].close()
                keep[provider.id] = (fingerprint, make_balancer(provider))
        for _, balancer in self._balancers.values():
            await balancer.close()
        self._balancers = keep

    def balancer(self, provider: Provider) -> Balancer:
        entry = self._balancers.get(provider.id)
        if entry is None:  # a provider of an older snapshot still in flight
            entry = (provider.load_balancing.model_dump_json(), make_balancer(provider))
            self._balancers[provider.id] = entry
        return entry[1]

    async def close(self) -> None:
        for _, balancer in self._balancers.values():
            await balancer.close()
        self._balancers = {}
        if self._upstreams is not None:
            await self._upstreams.close()
            self._upstreams = None
        await self.quota.close()
        self.access_log.close()

    # --- per request -----------------------------------------------------

    def begin(self, request: web.Request) -> RequestRecord:
        snapshot = self.snapshot
        if snapshot is None:
            raise ApiError(503, "The gateway has no configuration yet.", type="api_error", code="not_ready",
                           error_type="no_upstream")
        request_id = request_id_of(request)
        self.in_flight += 1
        self.metrics.in_flight += 1
        return RequestRecord(request_id, snapshot, request.method, request.path, host_label(snapshot, request.host))

    def finish(self, record: RequestRecord) -> None:
        self.in_flight -= 1
        self.metrics.in_flight -= 1
        observe(self.metrics, record, self.access_log)

    def authenticate(self, snapshot: CompiledSnapshot, headers: Mapping[str, str]) -> KeyEntry:
        return authenticate(snapshot, headers)

    def plan(self, record: RequestRecord, view: OpenAIView | None, model: str, *,
             aliases: Mapping[str, Alias] | None = None, check_key: bool = True) -> list[Target]:
        """The targets for a model on a host, after the key's checks (404 unknown, 403 not allowed).

        With no view (MCP model tools, chat templates) every served model is visible.
        """
        assert record.entry is not None
        snapshot = record.snapshot
        if view is not None:
            if not view.shows(model):
                raise model_not_found(model)
            aliases = view.aliases
        alias = aliases.get(model) if aliases else None
        if alias is None and model in snapshot.fixed_plans:  # one provider: nothing to draw
            targets = snapshot.fixed_plans[model]
        else:
            models = expand_alias(alias, self.rng) if alias is not None else [model]
            targets = plan(models, snapshot.tiers, self.rng)
        if not targets:
            raise model_not_found(model)
        if check_key:
            check_model(record.entry, model)
        return targets

    async def chat_deltas(self, entry: KeyEntry, body: dict[str, Any],
                          record: RequestRecord | None = None) -> AsyncIterator[str]:
        """Text deltas of a streamed chat completion run through the whole pipeline.

        With no `record`, the call is accounted as its own request (metrics and
        access log). Raises ApiError before the first delta on any refusal.
        """
        own = record is None
        if record is None:
            snapshot = self.snapshot
            if snapshot is None:
                raise ApiError(503, "The gateway has no configuration yet.", type="api_error", code="not_ready",
                               error_type="no_upstream")
            record = RequestRecord(new_request_id(), snapshot, "POST", "(internal)/chat", "*")
            self.in_flight += 1
            self.metrics.in_flight += 1
        record.entry = entry
        model = body.get("model")
        record.model = model if isinstance(model, str) else ""
        record.stream = True
        ok = False
        outcome = None
        try:
            targets = self.plan(record, None, record.model, aliases=record.snapshot.all_aliases)
            body = {**body, "stream": True}
            outcome = await forward(self, record, "chat", body, targets, stream=True, estimate=estimate_tokens(body))
            if outcome.status >= 400:
                raise ApiError(outcome.status, _error_message(outcome.body), type="api_error", code="upstream_error",
                               error_type="upstream_error")
            record.status = 200
            async for event in outcome.events():
                for text in _deltas(event):
                    yield text
            ok = True
        except ApiError as error:
            record.fail(error)
            raise
        finally:
            if not ok and not record.error_type:
                record.status, record.error_type = 499, "client_closed"
            if outcome is not None:
                await outcome.close(ok)
            if own:
                self.finish(record)


def request_id_of(request: web.Request) -> str:
    """The client's x-request-id, or a new one."""
    return request.headers.get("x-request-id") or new_request_id()


_ids = random.Random(os.urandom(16))


def new_request_id() -> str:
    """24 hex digits, unpredictable enough to correlate logs (not a secret): no system call per request."""
    return f"{_ids.getrandbits(96):024x}"


def _deltas(block: bytes) -> list[str]:
    out = []
    for event in block.split(b"\n\n"):
        if not event.startswith(b"data: {"):
            continue
        payload = orjson.loads(event[6:])
        for choice in payload.get("choices") or ():
            text = (choice.get("delta") or {}).get("content")
            if text:
                out.append(text)
    return out


def _error_message(body: bytes) -> str:
    try:
        return str(orjson.loads(body)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "The upstream refused the request."


def estimate_tokens(body: dict[str, Any], raw_length: int | None = None) -> Estimate:
    """The request's prompt estimate (characters / 4) and output cap; forward turns it into a reservation."""
    return estimate_request(body, raw_length)


def host_label(snapshot: CompiledSnapshot, host: str) -> str:
    """A metric label for the host: a configured host name, or '*' (never free-form client text)."""
    host = host.lower()
    if host in snapshot.exact_hosts:
        return host
    bare = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return bare if bare in snapshot.exact_hosts else "*"


GATEWAY: web.AppKey[Gateway] = web.AppKey("lockgate_gateway", Gateway)
