"""send: the upstream exchange for the target being tried, with retries.

Up to 1 + `retries.attempts` attempts with exponential backoff; each attempt
of a self-hosted provider takes a fresh endpoint from its balancer (ejected
and already tried endpoints excluded); under `maxConcurrency` it takes a slot,
waiting in the provider's queue while every endpoint is full (503
`model_at_capacity` when the wait runs out), and when every endpoint is ejected
it waits out an outage that ends within the request's queue wait. Connect errors, timeouts, 429 and 5xx
count against the outlier detector and retry; when every attempt failed the
target is skipped (failover). Other 4xx are the client's fault and are relayed.
A whole 2xx answer is translated into the client's format here, so one that is
not what it claims (MalformedUpstreamAnswer) fails the attempt like a 5xx.
A stream is handed on only once its first event is in hand, so a failover
happens before any byte reaches the client.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from lockgate.api.ir import Provider
from lockgate.proxy.admission import Busy, Slots, Ticket, outage_pause
from lockgate.proxy.balancing import Lease, PickRequest
from lockgate.proxy.balancing.prefix import prompt_prefix
from lockgate.proxy.balancing.registry import Balancers
from lockgate.proxy.deadline import Deadline
from lockgate.proxy.errors import ApiError, no_upstream, upstream_error, upstream_timeout
from lockgate.proxy.outlier import OutlierDetector
from lockgate.proxy.pipeline.context import Context
from lockgate.proxy.pipeline.deps import Deps
from lockgate.proxy.pipeline.step import Skip, Step
from lockgate.proxy.providers.base import UpstreamStreamError
from lockgate.proxy.upstream import Response, ServerDisconnected, UpstreamPool

if TYPE_CHECKING:
    from lockgate.proxy.tracing.spans import Span

# Upstream failures (UpstreamError) and failed writes to the client (aiohttp raises ConnectionResetError's
# subclasses) are all ConnectionErrors.
CONNECT_ERRORS = (ConnectionError,)


class _Retryable(Exception):
    def __init__(self, error: ApiError, retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


def _retry_after(headers: dict[str, str]) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class SendStep(Step):
    name = "send"
    phase = "target"

    def __init__(self, deps: Deps) -> None:
        self.upstreams: UpstreamPool = deps.upstreams
        self.balancers: Balancers = deps.balancers
        self.outliers: OutlierDetector = deps.outliers
        self.slots: Slots = deps.slots

    async def request(self, ctx: Context) -> None:
        assert ctx.target is not None
        provider = ctx.target.provider
        credential = ctx.snapshot.credential(provider)
        last_error: ApiError | None = None
        tried: set[str] = set()
        prefix = ""
        max_tokens = ctx.estimate.max_tokens or 0 if ctx.estimate is not None else 0
        for attempt in range(1 + max(0, provider.retries.attempts)):
            if attempt:
                await asyncio.sleep(provider.retries.backoff * (2 ** (attempt - 1)))
            lease: Lease | None = None
            if provider.base_url is None:
                excluded = self.outliers.ejected(provider.endpoint_urls()) | tried
                prefix = prefix or prompt_prefix(ctx.body, provider.load_balancing.prefix_length)
                # The client's own max_tokens (0: none, the balancer assumes its default), not the quota's cap.
                pick = PickRequest(ctx.target.model.name, prefix, ctx.prompt_tokens, max_tokens, frozenset(excluded))
                choice = ctx.trace.child("endpoint choice", {"lockgate.provider": provider.id,
                                                             "lockgate.balancer": provider.load_balancing.strategy,
                                                             "lockgate.excluded_endpoints": len(excluded)}) \
                    if ctx.trace is not None else None
                try:
                    lease = await self._lease(ctx, provider, pick)
                    if lease is None and not tried:  # every endpoint ejected: a short outage is waited out
                        urls = provider.endpoint_urls()
                        pause = outage_pause([self.outliers.ejected_for(u) for u in urls], ctx.queue_wait())
                        if pause is not None:
                            await asyncio.sleep(pause)
                            lease = await self._lease(ctx, provider, replace(pick, excluded=self.outliers.ejected(urls)))
                except Busy as busy:
                    if choice is not None and ctx.trace is not None:
                        ctx.trace.ended(choice, "at_capacity")
                    last_error = at_capacity(busy)
                    break
                except BaseException as exc:
                    if choice is not None and ctx.trace is not None:
                        ctx.trace.ended(choice, type(exc).__name__)
                    raise
                if choice is not None and ctx.trace is not None:
                    if lease is not None:
                        choice.set_attribute("lockgate.endpoint", lease.url)
                    ctx.trace.ended(choice, None if lease is not None else "no_endpoint")
                if lease is None:
                    last_error = last_error or no_upstream("Every endpoint of this model is busy or ejected.")
                    break
                base_url = outlier_key = lease.url
            else:
                if attempt and self.outliers.is_ejected(provider.id):
                    break
                base_url, outlier_key = provider.base_url.rstrip("/"), provider.id
            tried.add(base_url)
            ctx.attempts += 1
            trace = ctx.trace
            span = trace.attempt(ctx.op, provider, ctx.target.model.upstream_model,
                                 base_url, attempt + 1, ctx.stream) if trace is not None else None
            try:
                await self._attempt(ctx, provider, base_url, credential, span)
            except _Retryable as failure:
                if trace is not None and span is not None:
                    trace.ended(span, failure.error.code or failure.error.error_type, failure.error.message)
                self.outliers.failure(outlier_key, provider.outlier_detection, failure.retry_after)
                if lease is not None:
                    lease.release(False)
                last_error = failure.error
                continue
            except BaseException as exc:
                if trace is not None and span is not None:
                    trace.ended(span, type(exc).__name__)
                if lease is not None:
                    lease.release(False)
                raise
            if trace is not None:
                trace.call = span  # ended by the trace step, with the answer's facts
            self.outliers.success(outlier_key)
            ctx.lease = lease
            if lease is not None and ctx.response is not None:
                lease.first_token()
            return
        raise Skip(last_error) if last_error is not None else Skip(no_upstream("No upstream is available."), weak=True)

    async def _lease(self, ctx: Context, provider: Provider, pick: PickRequest) -> Lease | None:
        """An endpoint from the provider's balancer; under maxConcurrency, a slot, waiting in the provider's
        queue while every endpoint is full (Busy when the wait runs out)."""
        if provider.load_balancing.max_concurrency is None:
            return await self.balancers(provider).pick(pick)
        return await self.slots.acquire(self.balancers(provider), provider, pick, _ticket(ctx))

    async def _attempt(self, ctx: Context, provider: Provider, base_url: str, credential: str | None,
                       span: Span | None) -> None:
        assert ctx.adapter is not None and ctx.target is not None
        adapter, op = ctx.adapter, ctx.op
        timeouts = provider.timeouts
        call, client_wants_usage = adapter.build(op, ctx.upstream_body, provider, ctx.target.model, base_url,
                                                 credential, ctx.request_id, ctx.upstream_raw)
        if span is not None:
            assert ctx.trace is not None
            ctx.trace.inject(span, call.headers)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (ctx.timeout if ctx.timeout is not None else timeouts.request)
        first_deadline = min(deadline, loop.time() + timeouts.first_token)
        t0 = time.perf_counter()
        response: Response | None = None
        try:
            # The connect timeout bounds new connections only; a pooled one costs no timer.
            with Deadline(loop, first_deadline) as limit:
                response = await self.upstreams.post(call.url, call.body, call.headers,
                                                     connect_timeout=timeouts.connect,
                                                     transport=ctx.snapshot.transport(provider))
                status = response.status
                if status == 429 or status >= 500:  # retried elsewhere: its body is not worth reading whole
                    await response.drop(self.upstreams.settings.drop_body_bytes)
                    retry_after = _retry_after(response.headers)
                    if status == 429:
                        raise _Retryable(ApiError(429, "The upstream provider is rate limiting.",
                                                  type="rate_limit_error", code="provider_rate_limited",
                                                  error_type="provider_rate_limited",
                                                  headers={"Retry-After": str(int(retry_after))} if retry_after
                                                  else {}), retry_after)
                    raise _Retryable(upstream_error(f"The upstream answered {status}."),
                                     retry_after if status == 503 else None)
                ctx.status = ctx.upstream_status = status
                if status >= 400 or not ctx.stream:
                    if not response.complete:  # the headers were the first byte; the body may take the rest
                        limit.reschedule(deadline)
                    ctx.answer = await response.read()
                    if status < 400:  # in the client's format now: an answer that lies is this attempt's failure
                        answer = adapter.answer(op, ctx.answer, provider, ctx.model)
                        ctx.answer, ctx.usage, ctx.translated = answer.body, answer.usage, True
                    ctx.upstream_seconds += time.perf_counter() - t0
                    ctx.first_byte()
                    ctx.answered = True
                    return
                ctx.response, ctx.deadline = response, deadline
                ctx.translator = adapter.stream(op, provider, ctx.model, client_wants_usage)
                await _first_events(ctx, response)
                ctx.upstream_seconds += time.perf_counter() - t0
                ctx.first_byte()
                ctx.answered = True
        except _Retryable:
            ctx.upstream_seconds += time.perf_counter() - t0
            raise
        except TimeoutError:
            _drop(ctx, response)
            ctx.upstream_seconds += time.perf_counter() - t0
            raise _Retryable(upstream_timeout()) from None
        except (*CONNECT_ERRORS, UpstreamStreamError) as exc:
            _drop(ctx, response)
            ctx.upstream_seconds += time.perf_counter() - t0
            raise _Retryable(upstream_error(f"The upstream failed: {type(exc).__name__}.")) from None
        except BaseException:
            _drop(ctx, response)
            raise

    def finish(self, ctx: Context) -> None:
        if ctx.response is not None:
            ctx.response.close()  # an unfinished stream drops its upstream connection at once
        if ctx.lease is not None:
            ctx.lease.release(ctx.ok, ctx.usage.output_tokens)


def _ticket(ctx: Context) -> Ticket:
    """The request's place in a queue for endpoint slots (it waits only on its last target)."""
    assert ctx.entry is not None
    key = ctx.entry.key
    return Ticket(key.consumer, ctx.priority, key.queue_weight, ctx.queue_wait())


def at_capacity(busy: Busy) -> ApiError:
    """503 in OpenAI's format, with a Retry-After from the queue."""
    why = ("too many requests are waiting for it already" if busy.full
           else "no endpoint had a free slot within the request's queue wait")
    return ApiError(503, f"The model is at capacity: {why}. Please try again later.", type="api_error",
                    code="model_at_capacity", error_type="no_upstream",
                    headers={"Retry-After": str(max(1, math.ceil(busy.retry_after)))})


def _drop(ctx: Context, response: Response | None) -> None:
    if response is not None:
        response.close()
    ctx.response, ctx.translator, ctx.status, ctx.upstream_status = None, None, 0, 0
    ctx.pending.clear()


async def _first_events(ctx: Context, response: Response) -> None:
    """Read until the first client bytes are ready (before any byte goes to the client)."""
    translator = ctx.translator
    assert translator is not None
    while not ctx.pending:
        chunk = await response.readany()
        if not chunk:
            out = translator.end()
            if not out:
                raise ServerDisconnected("the stream ended before its first event")
            ctx.pending.append(out)
            return
        out = translator.feed_bytes(chunk)
        if out:
            ctx.pending.append(out)
