"""Quota metrics (Prometheus), in their own registry: the admin /metrics appends
`exposition()` to the data plane's. Rejections are counted by the data plane
(lockgate_quota_rejections_total{reason}), which sees every one of them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

REGISTRY = CollectorRegistry()

RESERVATIONS = Counter("lockgate_quota_reservations_total", "Reservations taken, by the store that took them",
                       ["store"], registry=REGISTRY)
RESERVED_TOKENS = Counter("lockgate_quota_reserved_tokens_total", "Tokens reserved before forwarding",
                          registry=REGISTRY)
SETTLED_TOKENS = Counter("lockgate_quota_settled_tokens_total", "Tokens really used, settled after the answer",
                         registry=REGISTRY)
QUEUE_DEPTH = Gauge("lockgate_quota_queue_depth", "Requests waiting for a provider model's capacity",
                    ["provider", "model"], registry=REGISTRY)
STORE_ERRORS = Counter("lockgate_quota_store_errors_total", "Calls to the shared quota store that failed",
                       registry=REGISTRY)
STORE_UP = Gauge("lockgate_quota_store_up", "1 while the shared quota store answers, 0 while it is away",
                 registry=REGISTRY)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
