"""Quota admission: reserve before forwarding, settle with real usage after.

`QuotaService.admit` either returns a `Reservation` or raises `QuotaRejected`
carrying the OpenAI error code, the real wait and the x-ratelimit-* headers.
The proxy calls `settle` exactly once per reservation, with the tokens really
used (an interrupted stream settles its prompt estimate plus what was produced).
A failover settles the failed provider's reservation with 0 and admits again
with `repeat_of` set to its `rid`, so the key counts the client request once.

Error codes (`QuotaRejected.code`) and the HTTP status the data plane answers
with (`QuotaRejected.status`):
- rate_limit_exceeded (429): the key's rpm/tpm (or its per-model limits).
- insufficient_quota (429): the key's monthly token budget is spent.
- provider_rate_limited (429): the provider model's rpm/tpm stayed saturated
  for the whole queue wait (or the request could not wait).
- quota_store_unavailable (503): `QuotaStoreUnavailable`, raised only in
  fail mode "closed" while Redis does not answer.
Every rejection carries `Retry-After` (whole seconds) in `headers`, plus the
x-ratelimit-* headers when they are known.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from lockgate.api.ir import ConsumerKey, Priority, RateLimits


@dataclass(slots=True)  # made per request: a frozen dataclass costs 5x to build
class AdmitRequest:
    key: ConsumerKey
    model: str  # the model the client asked for (after alias resolution)
    provider_id: str  # ModelProvider id chosen
    provider_limits: RateLimits  # the provider model's limits (rpm/tpm across consumers)
    estimated_tokens: int  # prompt estimate + max_tokens (or a cap)
    queue_max_wait: float = 0.0  # seconds a request may wait for provider capacity
    # The quota id (Reservation.rid) of an earlier admission of the same client request that a failover
    # settled with nothing: windows that already count it do not count it again, nor does the month.
    # (Only such a reservation is found by its rid in the memory store: see MemoryPlan.)
    repeat_of: str = ""
    priority: Priority = "interactive"  # the request's class in the provider's queue
    weight: int = 1  # the consumer's share of turns in the provider's queue
    queue_max_depth: int | None = None  # waiters the provider model's queue holds at most (None: no bound)
    queue_max_batch_delay: float = 30.0  # how long interactive waiters may keep a batch waiter back


@dataclass(slots=True)  # made per request
class Reservation:
    request: AdmitRequest
    reserved_tokens: int
    headers: dict[str, str] = field(default_factory=dict)  # x-ratelimit-* for the response
    rid: str = ""  # the request's id in the quota store
    month: str = ""  # the UTC month ('YYYY-MM') the tokens were reserved in
    month_end: float = 0.0
    groups: tuple[Any, ...] = ()  # what was reserved (lockgate.proxy.quota.plan.Group)
    plan: Any = None  # the store's compiled plan that took it and settles it directly, if any
    held: Any = None  # where that plan holds it (the memory store's window slots)
    settled: bool = False


class QuotaRejected(Exception):
    def __init__(self, code: str, message: str, retry_after: float, headers: dict[str, str] | None = None,
                 status: int = 429) -> None:
        super().__init__(message)
        self.code = code  # rate_limit_exceeded | insufficient_quota | provider_rate_limited | quota_store_unavailable
        self.message = message
        self.retry_after = retry_after
        self.headers = headers or {}
        self.status = status


class QuotaStoreUnavailable(QuotaRejected):
    """Fail mode "closed" and the shared store does not answer: 503, try again shortly."""

    def __init__(self, retry_after: float = 1.0) -> None:
        super().__init__("quota_store_unavailable", "The quota store is unavailable; try again shortly.",
                         retry_after, {"Retry-After": str(max(1, round(retry_after)))}, status=503)


class QuotaService(Protocol):
    async def admit(self, request: AdmitRequest) -> Reservation: ...

    async def settle(self, reservation: Reservation, used_tokens: int) -> None: ...

    async def usage(self, keys: Sequence[ConsumerKey] | None = None) -> dict[str, dict[str, object]]:
        """Per key id: {"month": "YYYY-MM", "tokens": int, "remaining": int | None, "requests": int,
        "limits": {...}, "window": {...}, "models": {...}}. `keys`: the keys to report (the current
        snapshot's); without it, the keys this replica has admitted requests for."""
        ...

    async def close(self) -> None: ...


class UnlimitedQuota:
    """Admits everything; stands in until the quota stores land."""

    async def admit(self, request: AdmitRequest) -> Reservation:
        return Reservation(request, request.estimated_tokens)

    async def settle(self, reservation: Reservation, used_tokens: int) -> None:
        return None

    async def close(self) -> None:
        return None

    async def usage(self, keys: Sequence[ConsumerKey] | None = None) -> dict[str, dict[str, object]]:
        return {}


def make_quota_service(store: str = "memory", fail_mode: str = "open", replicas_hint: int = 1,
                       state_dir: str | None = None, window: float = 60.0,
                       ca_file: str | None = None) -> QuotaService:
    """The quota service for a proxy: `memory` (one replica; the month's usage kept under
    `state_dir`) or a `redis://` / `rediss://` / `unix://` URL shared by replicas.
    `window` is the rate window in seconds (60: per minute); `ca_file` the CA bundle that signs
    a TLS Redis' certificate (rediss://), when it is not a public one."""
    from lockgate.proxy.quota.service import build_service

    return build_service(store, fail_mode, replicas_hint, state_dir, window, ca_file)
