"""The balancers of a process, one per self-hosted provider, kept across configurations
while a provider's load-balancing settings stay the same (its endpoint states live on)."""

from __future__ import annotations

from collections.abc import Iterable

from lockgate.api.ir import Provider
from lockgate.proxy.balancing import Balancer, make_balancer


class Balancers:
    def __init__(self) -> None:
        self._by_provider: dict[str, tuple[str, Balancer]] = {}

    def items(self) -> list[tuple[str, Balancer]]:
        return [(pid, b) for pid, (_, b) in self._by_provider.items()]

    async def update(self, providers: Iterable[Provider]) -> None:
        """Balancers for a new configuration's providers; the others are closed."""
        keep: dict[str, tuple[str, Balancer]] = {}
        for provider in providers:
            if provider.base_url is not None:
                continue
            fingerprint = provider.load_balancing.model_dump_json()
            old = self._by_provider.pop(provider.id, None)
            if old is not None and old[0] == fingerprint:
                old[1].update(provider.endpoint_urls())
                keep[provider.id] = old
            else:
                if old is not None:
                    await old[1].close()
                keep[provider.id] = (fingerprint, make_balancer(provider))
        for _, balancer in self._by_provider.values():
            await balancer.close()
        self._by_provider = keep

    def __call__(self, provider: Provider) -> Balancer:
        entry = self._by_provider.get(provider.id)
        if entry is None:  # a provider of an older snapshot still in flight
            entry = (provider.load_balancing.model_dump_json(), make_balancer(provider))
            self._by_provider[provider.id] = entry
        return entry[1]

    async def close(self) -> None:
        for _, balancer in self._by_provider.values():
            await balancer.close()
        self._by_provider = {}
