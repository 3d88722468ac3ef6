"""least-tokens: a black-box saturation estimate from what the gateway sees.

Each endpoint's expected wait is its time-to-first-token average plus the
time to serve the tokens already reserved on it (prompt + max_tokens of every
request in flight, plus this one) at its observed throughput. Endpoints with
no history yet borrow the average of the others, so a new replica is neither
starved nor flooded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lockgate.proxy.balancing.choice import Choice
from lockgate.proxy.balancing.state import EndpointState

DEFAULT_MAX_TOKENS = 256  # reserved when the client sets no max_tokens
PRIOR_TTFT = 0.2  # seconds, before any endpoint has answered
PRIOR_THROUGHPUT = 2000.0  # tokens/s, likewise


@dataclass(frozen=True)
class Priors:
    ttft: float = PRIOR_TTFT
    throughput: float = PRIOR_THROUGHPUT


def request_tokens(prompt_tokens: int, max_tokens: int) -> int:
    """Tokens a request reserves on its endpoint while in flight."""
    return max(prompt_tokens, 0) + (max_tokens if max_tokens > 0 else DEFAULT_MAX_TOKENS)


def priors(states: Sequence[EndpointState]) -> Priors:
    """Means of the endpoints that have history, for those that have none."""
    ttfts = [s.ttft.value for s in states if s.ttft.value is not None]
    rates = [s.throughput.value for s in states if s.throughput.value]
    return Priors(
        ttft=sum(ttfts) / len(ttfts) if ttfts else PRIOR_TTFT,
        throughput=sum(rates) / len(rates) if rates else PRIOR_THROUGHPUT,
    )


def expected_wait(state: EndpointState, extra_tokens: int, prior: Priors) -> float:
    """Seconds until a request of `extra_tokens` would be served on this endpoint."""
    ttft = state.ttft.value if state.ttft.value is not None else prior.ttft
    rate = state.throughput.value or prior.throughput
    return ttft + (state.outstanding_tokens + extra_tokens) / rate


def least_tokens(
    candidates: Sequence[EndpointState], prompt_tokens: int, max_tokens: int, turn: int = 0
) -> Choice | None:
    """The candidate with the lowest expected wait; ties go to fewer in flight, then rotate."""
    if not candidates:
        return None
    prior = priors(candidates)
    extra = request_tokens(prompt_tokens, max_tokens)
    n = len(candidates)
    waits = [expected_wait(s, extra, prior) for s in candidates]
    best = min(range(n), key=lambda i: (round(waits[i], 6), candidates[i].in_flight, (i - turn) % n))
    others = [w for i, w in enumerate(waits) if i != best]
    runner_up = f", next {min(others):.3f}s" if others else ""
    return Choice(candidates[best].url, "least-tokens", f"expected wait {waits[best]:.3f}s{runner_up}")
