"""Metrics of the queues for endpoint slots, shown on the admin /metrics with the quota's."""

from __future__ import annotations

from lockgate.proxy.metrics import GaugeFamily, HistogramFamily
from lockgate.proxy.quota.metrics import REGISTRY

WAIT_BUCKETS = (0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

QUEUE_DEPTH = GaugeFamily("lockgate_endpoint_queue_depth",
                          "Requests of this replica waiting for a free endpoint slot (maxConcurrency)",
                          ("provider",), REGISTRY)
QUEUE_WAIT = HistogramFamily("lockgate_endpoint_queue_wait_seconds",
                             "Time requests waited for a free endpoint slot, by outcome "
                             "(admitted, timeout, full, cancelled)",
                             ("provider", "priority", "outcome"), WAIT_BUCKETS, REGISTRY)
