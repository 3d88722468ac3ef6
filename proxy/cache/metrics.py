"""The cache's series: hits, misses, bypasses, stores, tokens saved and hit similarity per Route, namespace and
model; evictions, bytes and entries of the in-process store. Labels come from configuration only."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from lockgate.proxy.metrics import CounterFamily, HistogramFamily

LABELS = ("gateway", "route", "namespace", "model")
SIMILARITY_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.925, 0.95, 0.975, 0.99, 1.0)


class CacheMetrics:
    def __init__(self, gateway: str, registry: CollectorRegistry, size: Callable[[], tuple[int, int, int]]) -> None:
        self.gateway = gateway
        self.lookups = CounterFamily("lockgate_cache_lookups", "Cached-endpoint requests by result (hit, miss, bypass).",
                                     LABELS + ("result",), registry)
        self.stores = CounterFamily("lockgate_cache_stores", "Answers stored in the cache.", LABELS, registry)
        self.tokens_saved = CounterFamily("lockgate_cache_tokens_saved", "Tokens of upstream work hits answered.",
                                          LABELS + ("token_type",), registry)
        self.similarity = HistogramFamily("lockgate_cache_similarity", "Cosine similarity of semantic hits.", LABELS,
                                          SIMILARITY_BUCKETS, registry)
        self._size = size
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        """The in-process store's size, read at each scrape."""
        held, count, evictions = self._size()
        for family, value in (
                (GaugeMetricFamily("lockgate_cache_bytes", "Bytes held by the in-process store.", labels=("gateway",)),
                 held),
                (GaugeMetricFamily("lockgate_cache_entries", "Entries held by the in-process store.",
                                   labels=("gateway",)), count),
                (CounterMetricFamily("lockgate_cache_evictions", "Entries the in-process store dropped for room.",
                                     labels=("gateway",)), evictions)):
            family.add_metric([self.gateway], value)
            yield family

    def lookup(self, route: str, namespace: str, model: str, result: str) -> None:
        self.lookups.cell((self.gateway, route, namespace, model, result)).value += 1

    def stored(self, route: str, namespace: str, model: str) -> None:
        self.stores.cell((self.gateway, route, namespace, model)).value += 1

    def hit(self, route: str, namespace: str, model: str, input_tokens: int, output_tokens: int,
            similarity: float | None) -> None:
        labels = (self.gateway, route, namespace, model)
        self.tokens_saved.cell(labels + ("input",)).value += input_tokens
        self.tokens_saved.cell(labels + ("output",)).value += output_tokens
        if similarity is not None:
            self.similarity.histogram(labels).observe(similarity)
