"""cache: answer from the response cache, or keep the answer for the next identical (or similar) request.

On the OpenAI endpoints of a Route with a cache policy, after the model was
chosen: `lookup` finds a hit, a miss or a bypass (the key's override, an
uncached endpoint, a sampled request, `Cache-Control: no-store`). A hit
answers here: its quota counts a request (and the original's tokens when the
policy says hits spend them), the target phase is skipped, and the answer
goes out whole or as a replayed stream. A miss wraps the stream's response
filter to keep its bytes; at finish, an answer that went out whole and well
(a stream that ended cleanly) is stored. Every answer says
`x-lockgate-cache: hit|miss|bypass`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from lockgate.api.ir import RateLimits
from lockgate.proxy.cache import CacheService
from lockgate.proxy.cache.entry import Entry, served, stream_entry, whole_entry
from lockgate.proxy.cache.record import Recorder
from lockgate.proxy.cache.service import Lookup
from lockgate.proxy.metrics import Metrics
from lockgate.proxy.pipeline.context import Context
from lockgate.proxy.pipeline.deps import Deps
from lockgate.proxy.pipeline.step import Step

_STORING: set[asyncio.Future[bool]] = set()  # stores that outlive their request's cancellation
from lockgate.proxy.providers.base import Usage
from lockgate.proxy.snapshot import CompiledSnapshot
from lockgate.proxy.quota import AdmitRequest, QuotaRejected, QuotaService
from lockgate.proxy.quota.refusal import quota_error

NO_TOKENS = Usage(0, 0, True)


class CacheStep(Step):
    name = "cache"

    def __init__(self, deps: Deps) -> None:
        self.cache: CacheService | None = deps.cache
        self.quota: QuotaService = deps.quota
        self.metrics: Metrics = deps.metrics

    def idle(self, snapshot: CompiledSnapshot) -> bool:
        return self.cache is None or all(route.cache is None for route in snapshot.config.routes)

    # request and finish are plain functions that hand back a coroutine only for a cached Route: on any
    # other request they cost one call, not a coroutine to make and await.
    def request(self, ctx: Context) -> Awaitable[None] | None:
        if self.cache is None or ctx.kind != "openai" or ctx.view is None or ctx.view.cache is None:
            return None
        return self._look(ctx)

    async def _look(self, ctx: Context) -> None:
        found = ctx.cache = await self.lookup(ctx)
        if found.entry is not None:
            await self._serve(ctx, found, found.entry)

    async def lookup(self, ctx: Context) -> Lookup:
        """The cache's answer for this request (its one look-up: a hit, a miss or a bypass)."""
        assert self.cache is not None and ctx.view is not None and ctx.view.cache is not None
        assert ctx.entry is not None and ctx.targets
        key = ctx.entry.key
        return await self.cache.lookup(ctx.view.cache, key.cache, ctx.view.cache_route, key.consumer, ctx.op,
                                       ctx.targets[0].model.name, ctx.body, ctx.stream, ctx.headers)

    async def _serve(self, ctx: Context, found: Lookup, entry: Entry) -> None:
        assert ctx.entry is not None and found.policy is not None
        usage = entry.usage if found.policy.hits_spend_tokens else NO_TOKENS
        key = ctx.entry.key
        try:  # a hit is a request of the key's; its tokens only when the policy says so
            ctx.reservation = await self.quota.admit(AdmitRequest(key, found.model, "", RateLimits(),
                                                                  usage.input_tokens + usage.output_tokens))
        except QuotaRejected as rejected:
            self.metrics.quota_rejected(key.consumer, rejected.code, ctx.host, ctx.model)
            raise quota_error(rejected) from None
        wants_usage = bool((ctx.body.get("stream_options") or {}).get("include_usage")) if ctx.stream else False
        data = served(entry, wants_usage, ctx.op)
        if ctx.stream:
            ctx.pending, ctx.replay = [data], True
        else:
            ctx.answer, ctx.ok = data, True
        ctx.usage = usage
        ctx.status = ctx.upstream_status = 200
        ctx.answered = ctx.translated = True
        ctx.first_byte()

    def response(self, ctx: Context) -> None:
        found = ctx.cache
        if found is None or not found.store or ctx.translator is None or found.policy is None:
            return
        ctx.translator = found.recorder = Recorder(ctx.translator, found.policy.max_entry_bytes, ctx.pending)

    def finish(self, ctx: Context) -> Awaitable[None] | None:
        found = ctx.cache
        if self.cache is None or found is None or not found.store or not ctx.ok or ctx.upstream_status != 200:
            return None
        return self._store(ctx, found)

    async def _store(self, ctx: Context, found: Lookup) -> None:
        assert self.cache is not None
        entry: Entry | None = None
        if found.recorder is not None:
            recorded = found.recorder.recorded()
            entry = stream_entry(recorded, ctx.usage) if recorded is not None else None
        elif ctx.translated and not ctx.stream:
            entry = whole_entry(ctx.answer, ctx.usage)
        if entry is not None:
            # Shielded: a client that closes once it has a whole stream cancels this request's task
            # while the store is on its way to Redis; the answer is complete, so the store finishes.
            store = asyncio.ensure_future(self.cache.store(found, entry))
            try:
                await asyncio.shield(store)
            except asyncio.CancelledError:
                _STORING.add(store)
                store.add_done_callback(_STORING.discard)
