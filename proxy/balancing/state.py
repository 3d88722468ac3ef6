"""What the gateway knows about one endpoint: its own in-flight work, moving
averages of how fast the endpoint answered, and the engine's last scrape."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Ewma:
    """Exponentially weighted moving average; `value` is None before the first sample."""

    alpha: float = 0.2
    value: float | None = None

    def add(self, sample: float) -> None:
        self.value = sample if self.value is None else self.value + self.alpha * (sample - self.value)


@dataclass(frozen=True)
class EngineSample:
    """One scrape of an engine's Prometheus metrics."""

    waiting: float  # requests queued in the engine
    running: float  # requests being decoded
    cache_usage: float  # KV-cache usage, 0..1
    at: float  # monotonic time of the scrape
    in_flight_at_scrape: int  # the gateway's own in-flight count when it was taken


@dataclass
class EndpointState:
    url: str
    in_flight: int = 0
    outstanding_tokens: int = 0  # reserved (prompt + max_tokens) of requests in flight
    outstanding_prompt: int = 0  # the part of it not prefilled yet (before the first token)
    ttft: Ewma = field(default_factory=Ewma)  # seconds to first token
    # Seconds per token as requests saw them, queueing included: they grow with
    # load, so a busy endpoint looks slower and an idle one attracts work.
    prefill_time: Ewma = field(default_factory=Ewma)  # time to first token / prompt tokens
    decode_time: Ewma = field(default_factory=Ewma)  # (end - first token) / tokens after the first
    completed: int = 0
    failed: int = 0
    engine: EngineSample | None = None

    def metrics_fresh(self, now: float, stale_after: float) -> bool:
        return self.engine is not None and now - self.engine.at <= stale_after
