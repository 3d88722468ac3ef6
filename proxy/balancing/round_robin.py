"""Round-robin and least-request: the baselines, blind to what a request costs."""

from __future__ import annotations

from collections.abc import Sequence

from lockgate.proxy.balancing.choice import Choice
from lockgate.proxy.balancing.state import EndpointState


def round_robin(candidates: Sequence[EndpointState], turn: int) -> Choice | None:
    """The `turn`-th candidate, cyclically."""
    if not candidates:
        return None
    index = turn % len(candidates)
    return Choice(candidates[index].url, "round-robin", f"turn {turn} -> {index + 1} of {len(candidates)}")


def least_request(candidates: Sequence[EndpointState], turn: int = 0) -> Choice | None:
    """Fewest requests in flight; ties rotate with `turn` so idle endpoints share the work."""
    if not candidates:
        return None
    n = len(candidates)
    best = min(range(n), key=lambda i: (candidates[i].in_flight, (i - turn) % n))
    return Choice(candidates[best].url, "least-request", f"{candidates[best].in_flight} in flight")
