"""The result of a strategy: which endpoint, and why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lockgate.proxy.balancing.state import EndpointState


@dataclass(frozen=True)
class Choice:
    url: str
    rule: str  # short machine-readable cause, e.g. "affinity", "spill", "stale-fallback"
    detail: str = ""  # human-readable numbers behind it

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}" if self.detail else self.rule


def eligible(
    states: Sequence[EndpointState], excluded: frozenset[str], max_concurrency: int | None
) -> list[EndpointState]:
    """Endpoints that may take one more request: not excluded and below the concurrency cap."""
    return [
        s
        for s in states
        if s.url not in excluded and (max_concurrency is None or s.in_flight < max_concurrency)
    ]
