"""Prometheus metrics: the proxy's one mechanism, and the data plane's series.

Everything the proxy counts (requests, quota, MCP) is counted into plain
Python numbers (the event loop is single-threaded, so no locks) and turned
into Prometheus families only when /metrics is scraped, by collectors
registered in a prometheus_client registry: prometheus_client's own children
take a lock per increment, which costs more than the rest of a request's
accounting. `CounterFamily`, `GaugeFamily` and `HistogramFamily` are those
collectors for any labelled metric; `Metrics` holds the data plane's
request series (names after the OpenTelemetry GenAI conventions; dashboards
depend on them). One registry per gateway, so several gateways in one
process (tests) keep separate counts.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from lockgate.api.prices import micros_to_amount

REQUEST_LABELS = ("gateway", "host", "consumer", "provider", "model", "upstream_model", "status_code", "error_type")
MODEL_LABELS = ("gateway", "host", "consumer", "provider", "model", "upstream_model")
QUOTA_LABELS = ("gateway", "host", "consumer", "model", "reason")

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
MAX_SERIES = 100_000  # labels come from config, not from clients; this only guards memory


@dataclass
class Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(self.bounds, self.counts):
            running += count
            out.append((_bound(bound), running))
        out.append(("+Inf", running + self.counts[-1]))
        return out


def _bound(value: float) -> str:
    return repr(float(value))


class Cell:
    """One sample of a family: hot paths keep the cell of their labels and add to `value`."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0


class CounterFamily:
    """A labelled counter in plain numbers, a collector of its registry."""

    kind: type[CounterMetricFamily] | type[GaugeMetricFamily] = CounterMetricFamily

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...] = (),
                 registry: CollectorRegistry | None = None) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self.cells: dict[tuple[str, ...], Cell] = {} if labels else {(): Cell()}
        if registry is not None:
            registry.register(self)

    def cell(self, labels: tuple[str, ...] = ()) -> Cell:
        """The sample for `labels`, shown (at 0) from now on."""
        found = self.cells.get(labels)
        if found is None:
            found = self.cells[labels] = Cell()
        return found

    def collect(self) -> Iterator[Metric]:
        family = self.kind(self.name, self.documentation, labels=self.labels)
        for labels, cell in list(self.cells.items()):
            family.add_metric(list(labels), cell.value)
        yield family


class GaugeFamily(CounterFamily):
    """A labelled gauge: callers set `cell(labels).value`."""

    kind = GaugeMetricFamily


class HistogramFamily:
    """Labelled histograms in plain numbers, a collector of its registry."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...], bounds: tuple[float, ...],
                 registry: CollectorRegistry | None = None) -> None:
        self.name, self.documentation, self.labels, self.bounds = name, documentation, labels, bounds
        self.series: dict[tuple[str, ...], Histogram] = {}
        if registry is not None:
            registry.register(self)

    def histogram(self, labels: tuple[str, ...]) -> Histogram:
        found = self.series.get(labels)
        if found is None:
            found = self.series[labels] = Histogram(self.bounds)
        return found

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, histogram in list(self.series.items()):
            family.add_metric(list(labels), histogram.buckets(), histogram.total)
        yield family


@dataclass
class Series:
    """Everything counted for one (host, consumer, provider, model, upstream model, status, error) combination."""

    requests: int = 0
    duration: Histogram = field(default_factory=lambda: Histogram(DURATION_BUCKETS))
    ttft: Histogram = field(default_factory=lambda: Histogram(DURATION_BUCKETS))
    input_tokens: Histogram = field(default_factory=lambda: Histogram(TOKEN_BUCKETS))
    output_tokens: Histogram = field(default_factory=lambda: Histogram(TOKEN_BUCKETS))
    cost: dict[str, int] = field(default_factory=dict)  # currency -> micro-units spent

    def answered(self, duration: float, ttft: float | None, input_tokens: int, output_tokens: int) -> None:
        """A request a provider answered: its duration, time to first byte and tokens (when any), in one
        call (this runs on every request; a call per histogram costs more than its arithmetic)."""
        h = self.duration
        h.counts[bisect_left(h.bounds, duration)] += 1
        h.total += duration
        if ttft is not None:
            h = self.ttft
            h.counts[bisect_left(h.bounds, ttft)] += 1
            h.total += ttft
        if input_tokens or output_tokens:
            h = self.input_tokens
            h.counts[bisect_left(h.bounds, input_tokens)] += 1
            h.total += input_tokens
            h = self.output_tokens
            h.counts[bisect_left(h.bounds, output_tokens)] += 1
            h.total += output_tokens


class Metrics:
    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        self.series_by_labels: dict[tuple[str, ...], Series] = {}
        self.overhead = Histogram(OVERHEAD_BUCKETS)
        self.in_flight = 0
        self.quota_rejections: dict[tuple[str, str, str, str], int] = {}  # (host, consumer, model, reason)
        self.registry = CollectorRegistry()
        self.registry.register(_Collector(self))

    def series(self, host: str, consumer: str, provider: str, model: str, upstream_model: str, status: str,
               error_type: str) -> Series:
        key = (host, consumer, provider, model, upstream_model, status, error_type)
        series = self.series_by_labels.get(key)
        if series is None:
            series = Series()
            if len(self.series_by_labels) < MAX_SERIES:
                self.series_by_labels[key] = series
        return series

    def quota_rejected(self, consumer: str, reason: str, host: str = "*", model: str = "") -> None:
        key = (host, consumer, model, reason)
        self.quota_rejections[key] = self.quota_rejections.get(key, 0) + 1

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _Collector:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        g = m.gateway
        requests = CounterMetricFamily("lockgate_requests", "Requests served by the gateway.", labels=REQUEST_LABELS)
        duration = HistogramMetricFamily("gen_ai_client_operation_duration_seconds",
                                         "Duration of a GenAI operation through the gateway.",
                                         labels=MODEL_LABELS + ("status_code",))
        ttft = HistogramMetricFamily("gen_ai_server_time_to_first_token_seconds",
                                     "Time until the first byte of the answer.", labels=MODEL_LABELS)
        tokens = HistogramMetricFamily("gen_ai_client_token_usage", "Tokens used per request.",
                                       labels=MODEL_LABELS + ("token_type",))
        cost = CounterMetricFamily("lockgate_cost", "Money spent on requests, at the models' prices "
                                   "(cached input tokens at their price).", labels=MODEL_LABELS + ("currency",))
        for (host, consumer, provider, model, upstream, status, error), s in list(m.series_by_labels.items()):
            requests.add_metric([g, host, consumer, provider, model, upstream, status, error], s.requests)
            labels = [g, host, consumer, provider, model, upstream]
            for currency, micros in list(s.cost.items()):
                cost.add_metric(labels + [currency], micros_to_amount(micros))
            for histogram, family, extra in ((s.duration, duration, [status]), (s.ttft, ttft, []),
                                             (s.input_tokens, tokens, ["input"]),
                                             (s.output_tokens, tokens, ["output"])):
                buckets = histogram.buckets()
                if buckets[-1][1]:
                    family.add_metric(labels + extra, buckets, histogram.total)
        overhead = HistogramMetricFamily("lockgate_gateway_overhead_seconds",
                                         "Time per request not spent waiting on the upstream.", labels=("gateway",))
        overhead.add_metric([g], m.overhead.buckets(), m.overhead.total)
        in_flight = GaugeMetricFamily("lockgate_requests_in_flight", "Requests being served.", labels=("gateway",))
        in_flight.add_metric([g], m.in_flight)
        rejections = CounterMetricFamily("lockgate_quota_rejections", "Requests refused by quotas.",
                                         labels=QUOTA_LABELS)
        for (host, consumer, model, reason), count in list(m.quota_rejections.items()):
            rejections.add_metric([g, host, consumer, model, reason], count)
        yield from (requests, duration, ttft, tokens, cost, overhead, in_flight, rejections)


def make_metrics(gateway: str = "lockgate") -> Metrics:
    return Metrics(gateway)
