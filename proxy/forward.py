"""Forwarding along a plan: quota admission, endpoint choice, retries and failover.

`forward` walks the ordered targets of a request. For each provider it admits
the request against quotas, then tries up to 1 + `retries.attempts` times
(a fresh endpoint each time for self-hosted providers) with exponential
backoff. Connect errors, timeouts, 429 and 5xx count against the outlier
detector and move on; other 4xx are the client's fault and are relayed. A
stream is only handed back once its first event is in hand, so failover
happens before any byte reaches the client.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lockgate.api.ir import ConsumerKey, Provider
from lockgate.proxy.balancing import Lease, PickRequest
from lockgate.proxy.balancing.prefix import prompt_prefix
from lockgate.proxy.errors import ApiError, no_upstream, upstream_error, upstream_timeout
from lockgate.proxy.estimate import Estimate
from lockgate.proxy.providers import adapter_for
from lockgate.proxy.providers.anthropic import UpstreamStreamError
from lockgate.proxy.providers.base import Adapter, Operation, StreamTranslator, Usage
from lockgate.proxy.quota import AdmitRequest, QuotaRejected, Reservation
from lockgate.proxy.quota.plan import model_limits_for
from lockgate.proxy.record import RequestRecord
from lockgate.proxy.snapshot import Target
from lockgate.proxy.upstream import Response, ServerDisconnected

if TYPE_CHECKING:
    from lockgate.proxy.gateway import Gateway

# Upstream failures (UpstreamError) and failed writes to the client (aiohttp raises ConnectionResetError's
# subclasses) are all ConnectionErrors.
CONNECT_ERRORS = (ConnectionError,)


class _Retryable(Exception):
    def __init__(self, error: ApiError, retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


def quota_error(rejected: QuotaRejected) -> ApiError:
    headers = {"Retry-After": str(max(1, int(rejected.retry_after + 0.999))), **rejected.headers}
    provider = rejected.code == "provider_rate_limited"
    if rejected.status == 503:  # QuotaStoreUnavailable: fail mode "closed" while Redis is away
        return ApiError(503, rejected.message, type="api_error", code=rejected.code, error_type="internal",
                        headers=headers)
    return ApiError(429, rejected.message, type="insufficient_quota" if rejected.code == "insufficient_quota"
                    else "rate_limit_error", code=rejected.code,
                    error_type="provider_rate_limited" if provider else "policy_rate_limited", headers=headers)


def _retry_after(headers: dict[str, str]) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


@dataclass(slots=True)
class Outcome:
    """A successful (or relayed) upstream exchange. `close` must be awaited exactly once."""

    gateway: Gateway
    record: RequestRecord
    op: Operation
    status: int
    reservation: Reservation | None
    lease: Lease | None
    body: bytes = b""  # whole answer (not streamed)
    response: Response | None = None  # open stream
    translator: StreamTranslator | None = None
    pending: list[bytes] = field(default_factory=list)  # client events ready to send
    deadline: float = 0.0
    _closed: bool = False

    async def events(self):  # type: ignore[no-untyped-def]
        """Client SSE bytes (whole events), the pending ones first. Raises mid-stream failures."""
        assert self.response is not None and self.translator is not None
        record = self.record
        pending, self.pending = self.pending, []
        for block in pending:
            yield block
        response = self.response
        translator = self.translator
        async with asyncio.timeout_at(self.deadline):
            while True:
                t0 = time.perf_counter()
                chunk = await response.readany()
                record.upstream_seconds += time.perf_counter() - t0
                if not chunk:
                    break
                out = translator.feed_bytes(chunk)
                if out:
                    yield out
        out = translator.end()
        if out:
            yield out

    def usage(self) -> Usage:
        """The tokens to settle: the upstream's count, else the prompt estimate plus the output produced."""
        usage = self.record.usage if self.translator is None else self.translator.usage
        if usage.reported or self.status >= 400:
            return usage
        output = max(usage.output_tokens, getattr(self.translator, "chunks", 0))
        return Usage(usage.input_tokens or self.record.prompt_tokens, output, False)

    async def close(self, ok: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if self.response is not None:
            self.response.close()  # an unfinished stream drops its upstream connection at once
        usage = self.usage()
        self.record.usage = usage
        if self.lease is not None:
            self.lease.release(ok, usage.output_tokens)
        if self.reservation is not None:
            await self.gateway.quota.settle(self.reservation, usage.input_tokens + usage.output_tokens)


async def forward(gateway: Gateway, record: RequestRecord, op: Operation, body: dict[str, Any], plan: list[Target],
                  *, stream: bool, estimate: Estimate, prefix: str = "", timeout: float | None = None) -> Outcome:
    """The first upstream that answers, along the plan; raises ApiError when none is left.

    A failover admits the request again for the next provider as a repeat of the first reservation
    (`AdmitRequest.repeat_of`), so the key's rpm and monthly request count see one request.
    """
    assert record.entry is not None
    key = record.entry.key
    record.prompt_tokens = estimate.prompt_tokens
    counted = ""  # the quota id of the first reservation, once a failover settled it with nothing
    last_error: ApiError | None = None
    candidates = [t for t in plan if adapter_for(t.provider.type).supports(op)]
    if not candidates:
        raise ApiError(400, f"The model '{record.model}' is not served for this API.", code="unsupported_operation",
                       param="model")
    for index, target in enumerate(candidates):
        provider = target.provider
        if provider.base_url is not None and gateway.outliers.is_ejected(provider.id):
            last_error = last_error or no_upstream("Every upstream for this model is ejected after failures.")
            continue
        try:
            tokens = reservation_size(estimate, gateway.default_output_reservation, key, target)
            reservation = await gateway.quota.admit(AdmitRequest(key, target.model.name, provider.id,
                                                                 target.model.limits, tokens, provider.queue_max_wait,
                                                                 repeat_of=counted))
        except QuotaRejected as rejected:
            gateway.metrics.quota_rejected(key.consumer, rejected.code, record.host, record.model)
            last_error = quota_error(rejected)
            if rejected.code == "provider_rate_limited" and index + 1 < len(candidates):
                continue
            raise last_error from None
        record.provider, record.upstream_model = provider.id, target.model.upstream_model
        try:
            outcome, error = await _try_provider(gateway, record, op, body, target, reservation, stream=stream,
                                                 max_tokens=estimate.max_tokens or 0, prefix=prefix, timeout=timeout)
        except BaseException:
            await gateway.quota.settle(reservation, 0)
            raise
        if outcome is not None:
            return outcome
        await gateway.quota.settle(reservation, 0)
        counted = counted or reservation.rid
        last_error = error or last_error
    raise last_error or no_upstream("No upstream is available for this model.")


def reservation_size(estimate: Estimate, cap: int, key: ConsumerKey, target: Target) -> int:
    """Tokens to reserve for one target: without max_tokens the cap yields to the tightest tpm."""
    if estimate.max_tokens is not None:
        return estimate.reserved(cap)
    per_model = model_limits_for(key, target.model.name)
    return estimate.reserved(cap, (key.limits.tpm, per_model.tpm if per_model else None, target.model.limits.tpm))


async def _try_provider(gateway: Gateway, record: RequestRecord, op: Operation, body: dict[str, Any], target: Target,
                        reservation: Reservation, *, stream: bool, max_tokens: int, prefix: str,
                        timeout: float | None) -> tuple[Outcome | None, ApiError | None]:
    provider = target.provider
    adapter = adapter_for(provider.type)
    credential = record.snapshot.credential(provider)
    last_error: ApiError | None = None
    tried: set[str] = set()
    for attempt in range(1 + max(0, provider.retries.attempts)):
        if attempt:
            await asyncio.sleep(provider.retries.backoff * (2 ** (attempt - 1)))
        lease: Lease | None = None
        if provider.base_url is None:
            balancer = gateway.balancer(provider)
            excluded = gateway.outliers.ejected(provider.endpoint_urls()) | tried
            prefix = prefix or prompt_prefix(body, provider.load_balancing.prefix_length)
            # The client's own max_tokens (0: none, the balancer assumes its default), not the quota's cap.
            lease = await balancer.pick(PickRequest(target.model.name, prefix, record.prompt_tokens, max_tokens,
                                                    frozenset(excluded)))
            if lease is None:
                last_error = last_error or no_upstream("Every endpoint of this model is busy or ejected.")
                break
            base_url = outlier_key = lease.url
        else:
            if attempt and gateway.outliers.is_ejected(provider.id):
                break
            base_url, outlier_key = provider.base_url.rstrip("/"), provider.id
        tried.add(base_url)
        record.attempts += 1
        try:
            outcome = await _attempt(gateway, record, op, body, target, adapter, base_url, credential, lease,
                                     reservation, stream=stream, timeout=timeout)
        except _Retryable as failure:
            gateway.outliers.failure(outlier_key, provider.outlier_detection, failure.retry_after)
            if lease is not None:
                lease.release(False)
            last_error = failure.error
            continue
        except BaseException:
            if lease is not None:
                lease.release(False)
            raise
        gateway.outliers.success(outlier_key)
        return outcome, None
    return None, last_error


async def _attempt(gateway: Gateway, record: RequestRecord, op: Operation, body: dict[str, Any], target: Target,
                   adapter: Adapter, base_url: str, credential: str | None, lease: Lease | None,
                   reservation: Reservation, *, stream: bool, timeout: float | None) -> Outcome:
    provider: Provider = target.provider
    timeouts = provider.timeouts
    call, client_wants_usage = adapter.build(op, body, provider, target.model, base_url, credential, record.request_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (timeout if timeout is not None else timeouts.request)
    first_deadline = min(deadline, loop.time() + timeouts.first_token)
    t0 = time.perf_counter()
    response: Response | None = None
    try:
        # The connect timeout bounds new connections only; a pooled one costs no timer.
        async with asyncio.timeout_at(first_deadline) as limit:
            response = await gateway.upstreams.post(call.url, call.body, call.headers, connect_timeout=timeouts.connect,
                                                    transport=record.snapshot.transport(provider))
            status = response.status
            if status == 429 or status >= 500:  # retried elsewhere: its body is not worth reading whole
                await response.drop(gateway.upstreams.settings.drop_body_bytes)
                retry_after = _retry_after(response.headers)
                if status == 429:
                    raise _Retryable(ApiError(429, "The upstream provider is rate limiting.", type="rate_limit_error",
                                              code="provider_rate_limited", error_type="provider_rate_limited",
                                              headers={"Retry-After": str(int(retry_after))} if retry_after else {}),
                                     retry_after)
                raise _Retryable(upstream_error(f"The upstream answered {status}."),
                                 retry_after if status == 503 else None)
            if status >= 400 or not stream:
                if not response.complete:  # the headers were the first byte; the body may take the rest
                    limit.reschedule(deadline)
                data = await response.read()
                record.upstream_seconds += time.perf_counter() - t0
                record.first_byte()
                if status >= 400:
                    return Outcome(gateway, record, op, status, reservation, lease, body=adapter.error_body(op, data))
                answer = adapter.answer(op, data, provider, record.model)
                record.usage = answer.usage
                return Outcome(gateway, record, op, status, reservation, lease, body=answer.body)
            outcome = Outcome(gateway, record, op, status, reservation, lease, response=response,
                              translator=adapter.stream(op, provider, record.model, client_wants_usage),
                              deadline=deadline)
            await _first_events(outcome)
            record.upstream_seconds += time.perf_counter() - t0
            if lease is not None:
                lease.first_token()
            record.first_byte()
            return outcome
    except _Retryable:
        record.upstream_seconds += time.perf_counter() - t0
        raise
    except TimeoutError:
        if response is not None:
            response.close()
        record.upstream_seconds += time.perf_counter() - t0
        raise _Retryable(upstream_timeout()) from None
    except (*CONNECT_ERRORS, UpstreamStreamError) as exc:
        if response is not None:
            response.close()
        record.upstream_seconds += time.perf_counter() - t0
        raise _Retryable(upstream_error(f"The upstream failed: {type(exc).__name__}.")) from None
    except BaseException:
        if response is not None:
            response.close()
        raise


async def _first_events(outcome: Outcome) -> None:
    """Read until the first client bytes are ready (before any byte goes to the client)."""
    assert outcome.response is not None and outcome.translator is not None
    response = outcome.response
    while not outcome.pending:
        chunk = await response.readany()
        if not chunk:
            out = outcome.translator.end()
            if not out:
                raise ServerDisconnected("the stream ended before its first event")
            outcome.pending.append(out)
            return
        out = outcome.translator.feed_bytes(chunk)
        if out:
            outcome.pending.append(out)
