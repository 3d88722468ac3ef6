"""Prometheus metrics of the operator: how long reconciling and publishing
take, how often they fail, what state the objects are in, and how long a
change takes to be Programmed (loaded by every proxy replica).

One registry per `Reconciler`, served by `lockgate operator --metrics-port`.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
PROGRAMMED_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)

ConditionCounts = Callable[[], Iterable[tuple[tuple[str, str, str], int]]]


class ObjectsCollector(Collector):
    """`lockgate_operator_objects{kind, condition, status}`, read at scrape time."""

    def __init__(self, counts: ConditionCounts, programmed: Callable[[], bool | None]) -> None:
        self._counts, self._programmed = counts, programmed

    def collect(self) -> Iterator[Metric]:
        objects = GaugeMetricFamily("lockgate_operator_objects", "Lockgate objects by kind and condition status.",
                                    labels=("kind", "condition", "status"))
        for labels, count in sorted(self._counts()):
            objects.add_metric(labels, count)
        programmed = GaugeMetricFamily(
            "lockgate_operator_config_programmed",
            "1 when every proxy replica loaded the published configuration, 0 while it is not, absent before "
            "the first render.")
        state = self._programmed()
        if state is not None:
            programmed.add_metric((), 1.0 if state else 0.0)
        yield from (objects, programmed)


class BudgetCollector(Collector):
    """Used and limit of every ApiKey budget, from the usage mirrored across replicas."""

    def __init__(self, usage: Callable[[], Mapping[str, Mapping[str, Any]]]) -> None:
        self._usage = usage

    def collect(self) -> Iterator[Metric]:
        # Not "namespace": Prometheus' target label of that name would rename it.
        labels = ("apikey_namespace", "apikey", "budget")
        used = GaugeMetricFamily("lockgate_apikey_budget_used", "Consumed in the current budget period.",
                                 labels=labels)
        limit = GaugeMetricFamily("lockgate_apikey_budget_limit", "The budget of the period.", labels=labels)
        ratio = GaugeMetricFamily("lockgate_apikey_budget_used_ratio", "Used / limit (1 = budget spent).",
                                  labels=labels)
        window_labels = ("apikey_namespace", "apikey", "window")
        window_used = GaugeMetricFamily("lockgate_apikey_window_used", "Used in the current rate window (the last "
                                        "minute), across replicas.", labels=window_labels)
        window_limit = GaugeMetricFamily("lockgate_apikey_window_limit", "The rate window's limit.",
                                         labels=window_labels)
        window_ratio = GaugeMetricFamily("lockgate_apikey_window_used_ratio", "Used / limit of the rate window.",
                                         labels=window_labels)
        for key_id, report in sorted(self._usage().items()):
            namespace, _, name = key_id.rpartition("/")
            remaining = report.get("remaining")
            if remaining is not None:
                tokens = int(report.get("tokens") or 0)
                total = tokens + int(remaining)
                values = (namespace, name, "monthly_tokens")
                used.add_metric(values, tokens)
                limit.add_metric(values, total)
                ratio.add_metric(values, tokens / total if total else 1.0)
            for window, counts in sorted((report.get("windows") or {}).items()):
                values = (namespace, name, window)
                window_used.add_metric(values, counts["used"])
                window_limit.add_metric(values, counts["limit"])
                window_ratio.add_metric(values, counts["used"] / counts["limit"])
        yield from (used, limit, ratio, window_used, window_limit, window_ratio)


class OperatorMetrics:
    def __init__(self, counts: ConditionCounts = lambda: (), programmed: Callable[[], bool | None] = lambda: None,
                 usage: Callable[[], Mapping[str, Mapping[str, Any]]] = dict,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self.reconcile_seconds = Histogram("lockgate_operator_reconcile_duration_seconds",
                                           "Time of one reconcile pass (render, publish, statuses).",
                                           buckets=DURATION_BUCKETS, registry=self.registry)
        self.reconcile_errors = Counter("lockgate_operator_reconcile_errors", "Reconcile passes that failed.",
                                        registry=self.registry)
        self.publish_seconds = Histogram("lockgate_operator_publish_duration_seconds",
                                         "Time to write the configuration ConfigMaps and credentials Secret.",
                                         buckets=DURATION_BUCKETS, registry=self.registry)
        self.publish_errors = Counter("lockgate_operator_publish_errors", "Publications that failed.",
                                      registry=self.registry)
        self.programmed_seconds = Histogram(
            "lockgate_operator_change_to_programmed_seconds",
            "Time from a watched object's change to the configuration it produced being loaded by every replica.",
            buckets=PROGRAMMED_BUCKETS, registry=self.registry)
        self.registry.register(ObjectsCollector(counts, programmed))
        self.registry.register(BudgetCollector(usage))
        self._changed_at: float | None = None

    def changed(self) -> None:
        """A watched object changed; the first change of a burst starts the clock."""
        if self._changed_at is None:
            self._changed_at = self._clock()

    def published(self, wrote: bool) -> None:
        """A render finished: a change that published nothing new is not waited for."""
        if not wrote:
            self._changed_at = None

    def rolled_out(self, complete: bool) -> None:
        if complete and self._changed_at is not None:
            self.programmed_seconds.observe(self._clock() - self._changed_at)
            self._changed_at = None


def condition_counts(kinds: Iterable[tuple[str, Iterable[Any]]]) -> list[tuple[tuple[str, str, str], int]]:
    """(kind, conditions) pairs -> counts per (kind, condition type, status)."""
    tally: Tally[tuple[str, str, str]] = Tally()
    for kind, conditions in kinds:
        for condition in conditions:
            tally[(kind, condition.type, str(condition.status))] += 1
    return sorted(tally.items())
