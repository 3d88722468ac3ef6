"""Quota metrics (Prometheus). Defined once per process; the data plane must not redefine them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

REJECTIONS = Counter("lockgate_quota_rejections_total", "Requests refused by a quota, by reason",
                     ["reason"])
RESERVATIONS = Counter("lockgate_quota_reservations_total", "Reservations taken, by store that took them",
                       ["store"])
RESERVED_TOKENS = Counter("lockgate_quota_reserved_tokens_total", "Tokens reserved before forwarding")
SETTLED_TOKENS = Counter("lockgate_quota_settled_tokens_total", "Tokens really used, settled after the answer")
QUEUE_DEPTH = Gauge("lockgate_quota_queue_depth", "Requests waiting for a provider model's capacity",
                    ["provider", "model"])
STORE_ERRORS = Counter("lockgate_quota_store_errors_total", "Calls to the shared quota store that failed")
STORE_UP = Gauge("lockgate_quota_store_up", "1 while the shared quota store answers, 0 while it is away")
