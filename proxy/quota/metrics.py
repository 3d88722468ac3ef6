"""Quota metrics, in their own registry: the admin /metrics appends `exposition()` to the
data plane's. Rejections are counted by the data plane
(lockgate_quota_rejections_total{host,consumer,model,reason}), which sees every one of them.
Lock-free families of `lockgate.proxy.metrics`, like every metric of the proxy."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from lockgate.proxy.metrics import CounterFamily, GaugeFamily

REGISTRY = CollectorRegistry()

RESERVATIONS = CounterFamily("lockgate_quota_reservations_total", "Reservations taken, by the store that took them",
                             ("store",), REGISTRY)
RESERVED_TOKENS = CounterFamily("lockgate_quota_reserved_tokens_total", "Tokens reserved before forwarding",
                                registry=REGISTRY)
SETTLED_TOKENS = CounterFamily("lockgate_quota_settled_tokens_total", "Tokens really used, settled after the answer",
                               registry=REGISTRY)
QUEUE_DEPTH = GaugeFamily("lockgate_quota_queue_depth", "Requests waiting for a provider model's capacity",
                          ("provider", "model"), REGISTRY)
STORE_ERRORS = CounterFamily("lockgate_quota_store_errors_total", "Calls to the shared quota store that failed",
                             registry=REGISTRY)
STORE_UP = GaugeFamily("lockgate_quota_store_up", "1 while the shared quota store answers, 0 while it is away",
                       registry=REGISTRY)
LEASES = CounterFamily("lockgate_quota_leases_total", "Leases of the shared store's capacity asked for, by outcome "
                       "(granted, refused: too little left under a limit, failed: no answer)", ("outcome",), REGISTRY)
LEASED_REQUESTS = CounterFamily("lockgate_quota_leased_requests_total",
                                "Requests admitted from a lease, without a round trip to the shared store",
                                registry=REGISTRY)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
