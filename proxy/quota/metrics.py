"""Quota metrics (Prometheus), in their own registry: the admin /metrics appends
`exposition()` to the data plane's. Rejections are counted by the data plane
(lockgate_quota_rejections_total{host,consumer,model,reason}), which sees every one of them."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric

REGISTRY = CollectorRegistry()


class Cell:
    """One sample of a Tally: callers add to `value` directly."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0


class Tally:
    """A counter family in plain numbers, turned into samples only when scraped: every request
    counts here, and prometheus_client's counters take a lock per increment (one event loop,
    so none is needed). Hot paths keep the `cell` of their labels and add to it."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self.cells: dict[tuple[str, ...], Cell] = {} if labels else {(): Cell()}
        REGISTRY.register(self)

    def cell(self, labels: tuple[str, ...] = ()) -> Cell:
        """The sample for `labels`, shown (at 0) from now on."""
        found = self.cells.get(labels)
        if found is None:
            found = self.cells[labels] = Cell()
        return found

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, cell in list(self.cells.items()):
            family.add_metric(list(labels), cell.value)
        yield family


RESERVATIONS = Tally("lockgate_quota_reservations_total", "Reservations taken, by the store that took them",
                     ("store",))
RESERVED_TOKENS = Tally("lockgate_quota_reserved_tokens_total", "Tokens reserved before forwarding")
SETTLED_TOKENS = Tally("lockgate_quota_settled_tokens_total", "Tokens really used, settled after the answer")
QUEUE_DEPTH = Gauge("lockgate_quota_queue_depth", "Requests waiting for a provider model's capacity",
                    ["provider", "model"], registry=REGISTRY)
STORE_ERRORS = Counter("lockgate_quota_store_errors_total", "Calls to the shared quota store that failed",
                       registry=REGISTRY)
STORE_UP = Gauge("lockgate_quota_store_up", "1 while the shared quota store answers, 0 while it is away",
                 registry=REGISTRY)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
