"""Endpoint choice for self-hosted providers.

The proxy asks a `Balancer` (one per provider and snapshot) for an endpoint,
and tells it how the request went through the returned `Lease`. Strategies are
pure choice functions over `EndpointState`s; the balancer keeps the state.
Ejected endpoints (outlier detection) are passed in `PickRequest.excluded` and
never chosen.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lockgate.api.ir import Provider


@dataclass(frozen=True)
class PickRequest:
    model: str
    prefix: str = ""  # leading prompt text (system prompt, history) for prefix-affinity
    prompt_tokens: int = 0  # estimated
    max_tokens: int = 0
    excluded: frozenset[str] = frozenset()  # endpoint URLs not to choose (ejected, already tried)


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


@dataclass
class _SimpleLease:
    url: str
    owner: RoundRobinBalancer

    def first_token(self) -> None:
        return None

    def release(self, ok: bool, output_tokens: int = 0) -> None:
        self.owner.in_flight[self.url] -= 1


@dataclass
class RoundRobinBalancer:
    """Placeholder strategy until the strategies module lands."""

    urls: list[str]
    in_flight: dict[str, int] = field(default_factory=dict)
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    async def pick(self, request: PickRequest) -> Lease | None:
        candidates = [u for u in self.urls if u not in request.excluded]
        if not candidates:
            return None
        url = candidates[next(self._counter) % len(candidates)]
        self.in_flight[url] = self.in_flight.get(url, 0) + 1
        return _SimpleLease(url, self)

    def update(self, urls: Sequence[str]) -> None:
        self.urls = list(urls)

    async def close(self) -> None:
        return None


def make_balancer(provider: Provider) -> Balancer:
    """A balancer for a provider's endpoints, per its load-balancing strategy."""
    return RoundRobinBalancer(provider.endpoint_urls())
