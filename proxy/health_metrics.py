"""Prometheus view of what an operator is paged for: upstreams that are all
ejected, and configurations the proxy refused to load.

`lockgate_upstream_endpoints{provider}` and
`lockgate_upstream_endpoints_ejected{provider}` count, per provider of the
loaded configuration, its endpoints (a provider with a base URL is one) and
how many of them outlier detection holds out now; when the two are equal no
request for that provider can be sent. `lockgate_config_load_failures_total`
counts configurations that did not decode or compile (the last good one keeps
serving). Everything is read at scrape time; the request path pays nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lockgate.proxy.outlier import OutlierDetector
from lockgate.proxy.snapshot import CompiledSnapshot


class HealthCollector(Collector):
    def __init__(self, gateway: str, snapshot: Callable[[], CompiledSnapshot | None], outliers: OutlierDetector,
                 load_failures: Callable[[], int]) -> None:
        self.gateway = gateway
        self._snapshot, self._outliers, self._load_failures = snapshot, outliers, load_failures

    def collect(self) -> Iterator[Metric]:
        endpoints = GaugeMetricFamily("lockgate_upstream_endpoints", "Endpoints of a provider (a base URL is one).",
                                      labels=("gateway", "provider"))
        ejected = GaugeMetricFamily("lockgate_upstream_endpoints_ejected",
                                    "Endpoints of a provider that outlier detection holds out now.",
                                    labels=("gateway", "provider"))
        snapshot = self._snapshot()
        for provider in snapshot.config.providers if snapshot is not None else ():
            keys = [provider.id] if provider.base_url is not None else list(provider.endpoint_urls())
            endpoints.add_metric((self.gateway, provider.id), len(keys))
            ejected.add_metric((self.gateway, provider.id), len(self._outliers.ejected(keys)))
        failures = CounterMetricFamily("lockgate_config_load_failures",
                                       "Configurations that did not decode or compile; the last good one serves.",
                                       labels=("gateway",))
        failures.add_metric((self.gateway,), self._load_failures())
        yield from (endpoints, ejected, failures)
