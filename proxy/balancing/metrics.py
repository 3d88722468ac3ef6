"""Prometheus view of the balancers: why endpoints were picked, and what each holds.

`lockgate_balancer_picks_total{rule}` shows, per provider, how often a
strategy decided by itself and how often it fell back (stale-fallback,
picker-fallback, spill), which is what an operator needs to trust it.
Counts restart when a provider's balancer is rebuilt (a load-balancing
change); Prometheus' rate() handles the reset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lockgate.proxy.balancing.balancer import StrategyBalancer


class BalancerCollector(Collector):
    def __init__(self, gateway: str, balancers: Callable[[], Iterable[tuple[str, object]]]) -> None:
        self.gateway = gateway
        self._balancers = balancers  # (provider id, balancer) pairs, read at each scrape

    def collect(self) -> Iterator[Metric]:
        picks = CounterMetricFamily("lockgate_balancer_picks", "Endpoint picks by the rule that decided them.",
                                    labels=("gateway", "provider", "strategy", "rule"))
        in_flight = GaugeMetricFamily("lockgate_balancer_endpoint_in_flight", "Requests in flight per endpoint.",
                                      labels=("gateway", "provider", "endpoint"))
        outstanding = GaugeMetricFamily("lockgate_balancer_endpoint_outstanding_tokens",
                                        "Tokens reserved (prompt + max_tokens) on an endpoint by requests in flight.",
                                        labels=("gateway", "provider", "endpoint"))
        waiting = GaugeMetricFamily("lockgate_balancer_endpoint_engine_waiting",
                                    "Queue depth an engine reported at its last scrape.",
                                    labels=("gateway", "provider", "endpoint"))
        for provider, balancer in self._balancers():
            if not isinstance(balancer, StrategyBalancer):
                continue
            for rule, count in sorted(balancer.decisions.items()):
                picks.add_metric((self.gateway, provider, balancer.strategy, rule), count)
            for url, state in balancer.states.items():
                labels = (self.gateway, provider, url)
                in_flight.add_metric(labels, state.in_flight)
                outstanding.add_metric(labels, state.outstanding_tokens)
                if state.engine is not None:
                    waiting.add_metric(labels, state.engine.waiting)
        yield from (picks, in_flight, outstanding, waiting)
