"""What the steps are given when a pipeline is built: the process' shared parts."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lockgate.proxy.accesslog import AccessLog
from lockgate.proxy.admission import Slots
from lockgate.proxy.balancing.registry import Balancers
from lockgate.proxy.cache import CacheService
from lockgate.proxy.estimate import DEFAULT_OUTPUT_RESERVATION
from lockgate.proxy.metrics import CounterFamily, Metrics
from lockgate.proxy.outlier import OutlierDetector
from lockgate.proxy.quota import QuotaService
from lockgate.proxy.speed import SpeedBook
from lockgate.proxy.upstream import UpstreamPool

if TYPE_CHECKING:
    from lockgate.proxy.tracing.tracer import Tracing


@dataclass
class Deps:
    quota: QuotaService
    metrics: Metrics
    access_log: AccessLog
    upstreams: UpstreamPool
    balancers: Balancers = field(default_factory=Balancers)
    outliers: OutlierDetector = field(default_factory=OutlierDetector)
    rng: random.Random = field(default_factory=random.Random)
    slots: Slots = field(default_factory=Slots)  # endpoint slots under maxConcurrency, and their queues
    default_output_reservation: int = DEFAULT_OUTPUT_RESERVATION  # output tokens reserved without max_tokens
    tracing: Tracing | None = None  # None: tracing off, no span is made
    cache: CacheService | None = None  # the response cache (None: no cache step does anything)
    speeds: SpeedBook = field(default_factory=SpeedBook)  # measured speed per model, for choosing by preferences
    choices: CounterFamily = field(default_factory=lambda: CounterFamily(
        "lockgate_model_choices", "Requests to a virtual model, by the model chosen by preferences.",
        ("gateway", "host", "virtual_model", "model")))
