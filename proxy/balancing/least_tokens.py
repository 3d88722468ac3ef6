"""least-tokens: a black-box saturation estimate from what the gateway sees.

For each endpoint the gateway knows the tokens it has reserved there (prompt
+ max_tokens of every request in flight; the prompt part is released at the
first token) and, as moving averages, how long a prompt token took to reach
the first token and how long an output token took to decode, both as
requests experienced them under the load of the time. The expected wait is
the time to work through that backlog plus this request at those speeds;
the endpoint with the lowest wins. Because the speeds include queueing, a
loaded endpoint looks slow and an idle one cheap, which steers load back.
Endpoints with no history borrow the average of the others, so a new replica
is neither starved nor flooded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lockgate.proxy.balancing.choice import Choice
from lockgate.proxy.balancing.state import EndpointState

DEFAULT_MAX_TOKENS = 256  # reserved when the client sets no max_tokens
PRIOR_PREFILL_TIME = 0.0002  # seconds per prompt token, before any endpoint has answered
PRIOR_DECODE_TIME = 0.02  # seconds per output token, likewise


@dataclass(frozen=True)
class Speeds:
    prefill_time: float = PRIOR_PREFILL_TIME
    decode_time: float = PRIOR_DECODE_TIME


def request_tokens(prompt_tokens: int, max_tokens: int) -> int:
    """Tokens a request reserves on its endpoint while in flight."""
    return max(prompt_tokens, 0) + (max_tokens if max_tokens > 0 else DEFAULT_MAX_TOKENS)


def _mean(values: list[float], default: float) -> float:
    return sum(values) / len(values) if values else default


def priors(states: Sequence[EndpointState]) -> Speeds:
    """Means of the endpoints that have history, for those that have none."""
    return Speeds(
        prefill_time=_mean([s.prefill_time.value for s in states if s.prefill_time.value is not None], PRIOR_PREFILL_TIME),
        decode_time=_mean([s.decode_time.value for s in states if s.decode_time.value is not None], PRIOR_DECODE_TIME),
    )


def expected_wait(state: EndpointState, prompt_tokens: int, max_tokens: int, prior: Speeds) -> float:
    """Seconds to serve the endpoint's backlog and then this request, at its observed speeds."""
    prefill = state.prefill_time.value if state.prefill_time.value is not None else prior.prefill_time
    decode = state.decode_time.value if state.decode_time.value is not None else prior.decode_time
    prompt = state.outstanding_prompt + max(prompt_tokens, 0)
    output = state.outstanding_tokens - state.outstanding_prompt + request_tokens(0, max_tokens)
    return prompt * prefill + output * decode


def least_tokens(
    candidates: Sequence[EndpointState], prompt_tokens: int, max_tokens: int, turn: int = 0
) -> Choice | None:
    """The candidate with the lowest expected wait; ties go to fewer in flight, then rotate."""
    if not candidates:
        return None
    prior = priors(candidates)
    n = len(candidates)
    waits = [expected_wait(s, prompt_tokens, max_tokens, prior) for s in candidates]
    best = min(range(n), key=lambda i: (round(waits[i], 6), candidates[i].in_flight, (i - turn) % n))
    others = [w for i, w in enumerate(waits) if i != best]
    runner_up = f", next {min(others):.3f}s" if others else ""
    return Choice(candidates[best].url, "least-tokens", f"expected wait {waits[best]:.3f}s{runner_up}")
