"""Endpoint choice for self-hosted providers.

The proxy asks a `Balancer` (one per provider and snapshot) for an endpoint,
and tells it how the request went through the returned `Lease`. Strategies are
pure choice functions over `EndpointState`s (one module each: round_robin,
least_tokens, prefix_affinity, engine_metrics, external); the balancer keeps
the state. Ejected endpoints (outlier detection) are passed in
`PickRequest.excluded` and never chosen; neither is an endpoint at its
`maxConcurrency`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from lockgate.api.ir import Provider
from lockgate.proxy.balancing.balancer import STRATEGIES, EndpointLease, StrategyBalancer
from lockgate.proxy.balancing.choice import Choice
from lockgate.proxy.balancing.request import PickRequest

__all__ = [
    "STRATEGIES",
    "Balancer",
    "Choice",
    "EndpointLease",
    "Lease",
    "PickRequest",
    "StrategyBalancer",
    "make_balancer",
]


class Lease(Protocol):
    url: str

    def first_token(self) -> None: ...

    def release(self, ok: bool, output_tokens: int = 0) -> None: ...


class Balancer(Protocol):
    async def pick(self, request: PickRequest) -> Lease | None:
        """An endpoint for the request, or None when every endpoint is excluded or full."""
        ...

    def update(self, urls: Sequence[str]) -> None:
        """The provider's ready endpoints changed (a new snapshot)."""
        ...

    async def close(self) -> None:
        """Stop background work (metrics scraping)."""
        ...


def make_balancer(provider: Provider) -> Balancer:
    """A balancer for a provider's endpoints, per its load-balancing strategy.

    Safe to call outside an event loop: background work (metrics scraping,
    the picker's HTTP session) starts at the first pick.
    """
    return StrategyBalancer(provider.endpoint_urls(), provider.load_balancing, provider.engine)
