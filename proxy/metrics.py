"""Prometheus metrics of the data plane (names after the OpenTelemetry GenAI conventions).

One registry per gateway, so several gateways in one process (tests) keep
separate counts. Dashboards depend on these names and labels.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REQUEST_LABELS = ("gateway", "host", "consumer", "provider", "model", "upstream_model", "status_code", "error_type")
TOKEN_LABELS = ("gateway", "consumer", "provider", "model", "upstream_model", "token_type")
MODEL_LABELS = ("gateway", "consumer", "provider", "model", "upstream_model")

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


@dataclass
class Metrics:
    registry: CollectorRegistry
    duration: Histogram
    tokens: Histogram
    ttft: Histogram
    requests: Counter
    in_flight: Gauge
    overhead: Histogram
    quota_rejections: Counter

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def make_metrics() -> Metrics:
    registry = CollectorRegistry()
    return Metrics(
        registry=registry,
        duration=Histogram("gen_ai_client_operation_duration_seconds", "Duration of a GenAI operation through the gateway.",
                           MODEL_LABELS + ("status_code",), buckets=_DURATION_BUCKETS, registry=registry),
        tokens=Histogram("gen_ai_client_token_usage", "Tokens used per request.", TOKEN_LABELS,
                         buckets=_TOKEN_BUCKETS, registry=registry),
        ttft=Histogram("gen_ai_server_time_to_first_token_seconds", "Time until the first byte of the answer.",
                       MODEL_LABELS, buckets=_DURATION_BUCKETS, registry=registry),
        requests=Counter("lockgate_requests_total", "Requests served by the gateway.", REQUEST_LABELS, registry=registry),
        in_flight=Gauge("lockgate_requests_in_flight", "Requests being served.", ("gateway",), registry=registry),
        overhead=Histogram("lockgate_gateway_overhead_seconds", "Time per request not spent waiting on the upstream.",
                           ("gateway",), buckets=_OVERHEAD_BUCKETS, registry=registry),
        quota_rejections=Counter("lockgate_quota_rejections_total", "Requests refused by quotas.",
                                 ("gateway", "consumer", "reason"), registry=registry),
    )
