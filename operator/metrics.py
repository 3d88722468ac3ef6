"""Prometheus metrics of the operator: how long reconciling and publishing
take, how often they fail, what state the objects are in, and how long a
change takes to be Programmed (loaded by every proxy replica).

One registry per `Reconciler`, served by `lockgate operator --metrics-port`.
"""

from __future__ import annotations

import re
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lockgate.operator.alerts import budgets_of
from lockgate.operator.usage import budget_usage_id

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
    """Used and limit of every monthly limit of each ApiKey and team Budget, and of each key's rate
    windows, from the usage mirrored across replicas (the limits the budget alerts watch)."""

    def __init__(self, usage: Callable[[], Mapping[str, Mapping[str, Any]]]) -> None:
        self._usage = usage

    def collect(self) -> Iterator[Metric]:
        # Not "namespace": Prometheus' target label of that name would rename it.
        keys = _BudgetGauges("lockgate_apikey_budget", "", ("apikey_namespace", "apikey", "budget"))
        teams = _BudgetGauges("lockgate_team_budget", " of a team Budget (all its keys together)",
                              ("budget_namespace", "team_budget", "budget"))
        window_labels = ("apikey_namespace", "apikey", "window")
        window_used = GaugeMetricFamily("lockgate_apikey_window_used", "Used in the current rate window (the last "
                                        "minute), across replicas.", labels=window_labels)
        window_limit = GaugeMetricFamily("lockgate_apikey_window_limit", "The rate window's limit.",
                                         labels=window_labels)
        window_ratio = GaugeMetricFamily("lockgate_apikey_window_used_ratio", "Used / limit of the rate window.",
                                         labels=window_labels)
        team_prefix = budget_usage_id("")
        for usage_id, report in sorted(self._usage().items()):
            team = usage_id.startswith(team_prefix)
            namespace, _, name = usage_id.removeprefix(team_prefix).rpartition("/")
            (teams if team else keys).add(namespace, name, report)
            if team:
                continue
            for window, counts in sorted((report.get("windows") or {}).items()):
                values = (namespace, name, window)
                window_used.add_metric(values, counts["used"])
                window_limit.add_metric(values, counts["limit"])
                window_ratio.add_metric(values, counts["used"] / counts["limit"])
        yield from (*keys.families, *teams.families, window_used, window_limit, window_ratio)


class _BudgetGauges:
    """`<prefix>_used`, `_limit` and `_used_ratio`, one series per object and monthly limit."""

    def __init__(self, prefix: str, of: str, labels: tuple[str, str, str]) -> None:
        self.used = GaugeMetricFamily(f"{prefix}_used", f"Consumed in the current budget period{of}.", labels=labels)
        self.limit = GaugeMetricFamily(f"{prefix}_limit", f"The budget of the period{of}.", labels=labels)
        self.ratio = GaugeMetricFamily(f"{prefix}_used_ratio", f"Used / limit{of} (1 = budget spent).", labels=labels)
        self.families = (self.used, self.limit, self.ratio)

    def add(self, namespace: str, name: str, usage: Mapping[str, Any]) -> None:
        for budget in budgets_of(usage):
            values = (namespace, name, _snake(budget.name))
            self.used.add_metric(values, budget.used)
            self.limit.add_metric(values, budget.limit)
            self.ratio.add_metric(values, budget.used / budget.limit if budget.limit else 1.0)


def _snake(name: str) -> str:
    """monthlyTokens -> monthly_tokens, as a label value."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


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
