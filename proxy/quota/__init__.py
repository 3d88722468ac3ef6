"""Quota admission: reserve before forwarding, settle with real usage after.

`QuotaService.admit` either returns a `Reservation` or raises `QuotaRejected`
carrying the OpenAI error code, the real wait and the x-ratelimit-* headers.
The proxy calls `settle` exactly once per reservation, with the tokens really
used (an interrupted stream settles what was produced).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from lockgate.api.ir import ConsumerKey, RateLimits


@dataclass(frozen=True)
class AdmitRequest:
    key: ConsumerKey
    model: str  # the model the client asked for (after alias resolution)
    provider_id: str  # ModelProvider id chosen
    provider_limits: RateLimits  # the provider model's limits (rpm/tpm across consumers)
    estimated_tokens: int  # prompt estimate + max_tokens (or a cap)
    queue_max_wait: float = 0.0  # seconds a request may wait for provider capacity


@dataclass
class Reservation:
    request: AdmitRequest
    reserved_tokens: int
    headers: dict[str, str] = field(default_factory=dict)  # x-ratelimit-* for the response


class QuotaRejected(Exception):
    def __init__(self, code: str, message: str, retry_after: float, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code  # rate_limit_exceeded | insufficient_quota | provider_rate_limited
        self.message = message
        self.retry_after = retry_after
        self.headers = headers or {}


class QuotaService(Protocol):
    async def admit(self, request: AdmitRequest) -> Reservation: ...

    async def settle(self, reservation: Reservation, used_tokens: int) -> None: ...

    async def usage(self) -> dict[str, dict[str, object]]:
        """Per key id: {"month": "YYYY-MM", "tokens": int, "remaining": int | None, "requests": int, ...}."""
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

    async def usage(self) -> dict[str, dict[str, object]]:
        return {}


def make_quota_service(store: str = "memory", fail_mode: str = "open", replicas_hint: int = 1,
                       state_dir: str | None = None) -> QuotaService:
    """The quota service for a proxy: `memory` or a `redis://` URL."""
    return UnlimitedQuota()
