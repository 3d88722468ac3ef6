"""engine-metrics: score endpoints by what the engines report about themselves.

A score is an estimate of the requests at the engine (waiting + running from
the last scrape, corrected by what this gateway sent or finished since), with
queued requests counted again because they mean the engine is saturated, plus
a KV-cache pressure term (a nearly full cache preempts and evicts). The
endpoint that the prefix's rendezvous ranking prefers gets a bonus worth a few
requests, so shared prefixes keep hitting the same cache unless that engine
is clearly busier. Metrics older than `stale_after` on any candidate make the
strategy fall back to least-tokens: stale numbers herd traffic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lockgate.api.ir import EngineMetrics
from lockgate.proxy.balancing.choice import Choice
from lockgate.proxy.balancing.least_tokens import least_tokens
from lockgate.proxy.balancing.prefix_affinity import rendezvous_rank
from lockgate.proxy.balancing.state import EndpointState

# Metric names per engine: vLLM (v1), SGLang. TGI and llama.cpp expose no
# comparable gauges, so they use the vLLM names and stay on the fallback.
ENGINE_METRIC_NAMES: dict[str, tuple[str, str, str]] = {
    "vllm": ("vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc"),
    "sglang": ("sglang:num_queue_reqs", "sglang:num_running_reqs", "sglang:token_usage"),
}


def default_engine_metrics(engine: str) -> EngineMetrics:
    waiting, running, cache = ENGINE_METRIC_NAMES.get(engine, ENGINE_METRIC_NAMES["vllm"])
    return EngineMetrics(waiting_metric=waiting, running_metric=running, cache_metric=cache)


@dataclass(frozen=True)
class Weights:
    waiting: float = 1.0  # extra weight of a queued request over a running one
    cache: float = 4.0  # a full KV cache counts as this many requests
    affinity: float = 2.0  # the prefix's preferred endpoint may be this many requests busier


def engine_score(state: EndpointState, weights: Weights) -> float:
    """Lower is better; only meaningful when the state has an engine sample."""
    sample = state.engine
    if sample is None:
        return float("inf")
    since_scrape = state.in_flight - sample.in_flight_at_scrape
    requests = max(0.0, sample.waiting + sample.running + since_scrape)
    # a saturated engine queues what arrived since; one with free slots runs it
    waiting = max(0.0, sample.waiting + since_scrape) if sample.waiting > 0 else 0.0
    return requests + weights.waiting * waiting + weights.cache * min(max(sample.cache_usage, 0.0), 1.0)


def engine_metrics(
    candidates: Sequence[EndpointState],
    request_digest: str,
    prompt_tokens: int,
    max_tokens: int,
    now: float,
    stale_after: float,
    weights: Weights = Weights(),
    turn: int = 0,
) -> Choice | None:
    if not candidates:
        return None
    stale = [s.url for s in candidates if not s.metrics_fresh(now, stale_after)]
    if stale:
        fallback = least_tokens(candidates, prompt_tokens, max_tokens, turn)
        assert fallback is not None
        return Choice(fallback.url, "stale-fallback", f"no fresh metrics from {', '.join(stale)}; {fallback}")
    preferred = rendezvous_rank(request_digest, [s.url for s in candidates])[0] if request_digest else None
    n = len(candidates)
    scores = [engine_score(s, weights) - (weights.affinity if s.url == preferred else 0.0) for s in candidates]
    best = min(range(n), key=lambda i: (round(scores[i], 6), (i - turn) % n))
    chosen = candidates[best]
    assert chosen.engine is not None
    rule = "metrics-affinity" if chosen.url == preferred else "metrics"
    return Choice(
        chosen.url,
        rule,
        f"score {scores[best]:.2f} (waiting {chosen.engine.waiting:g}, running {chosen.engine.running:g}, "
        f"kv {chosen.engine.cache_usage:.0%})",
    )
