"""prefix-affinity: requests sharing a prompt prefix go to the same endpoint.

Rendezvous (highest-random-weight) hashing ranks the endpoints for a prefix
digest; removing an endpoint only moves the prefixes it ranked first, adding
one only takes about 1/N of them. Bounded load: an endpoint whose in-flight
count would pass ceil((1 + epsilon) x average) passes the request on to the
next in its ranking, so a hot prefix cannot melt one replica.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from lockgate.proxy.balancing.choice import Choice
from lockgate.proxy.balancing.round_robin import least_request
from lockgate.proxy.balancing.state import EndpointState


def prefix_digest(prefix: str, length: int) -> str:
    """A short stable digest of the first `length` characters; empty for no prefix."""
    if not prefix:
        return ""
    return hashlib.blake2b(prefix[:length].encode(), digest_size=16).hexdigest()


def _weight(digest: str, url: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{digest}|{url}".encode(), digest_size=8).digest(), "big")


def rendezvous_rank(digest: str, urls: Sequence[str]) -> list[str]:
    """Endpoints in order of preference for a digest (same for every replica of the gateway)."""
    return sorted(urls, key=lambda u: _weight(digest, u), reverse=True)


def load_cap(candidates: Sequence[EndpointState], epsilon: float) -> int:
    """Most requests in flight an endpoint may hold after taking this one."""
    total = sum(s.in_flight for s in candidates) + 1
    return max(1, math.ceil((1 + epsilon) * total / len(candidates)))


def prefix_affinity(
    candidates: Sequence[EndpointState], digest: str, epsilon: float, turn: int = 0
) -> Choice | None:
    """The digest's preferred endpoint, or the next one in its ranking below the load cap."""
    if not candidates:
        return None
    if not digest:
        fallback = least_request(candidates, turn)
        return Choice(fallback.url, "no-prefix", fallback.detail) if fallback else None
    by_url = {s.url: s for s in candidates}
    cap = load_cap(candidates, epsilon)
    ranked = rendezvous_rank(digest, list(by_url))
    for position, url in enumerate(ranked):
        if by_url[url].in_flight + 1 <= cap:
            if position == 0:
                return Choice(url, "affinity", f"preferred endpoint, {by_url[url].in_flight} in flight, cap {cap}")
            return Choice(url, "spill", f"{position} preferred endpoint(s) at cap {cap}, took choice {position + 1}")
    # unreachable: the least-loaded endpoint is never above the average
    return Choice(ranked[0], "affinity", "all at cap")
