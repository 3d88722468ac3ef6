"""What the proxy remembers about one request, for metrics and the access log."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import orjson

from lockgate.proxy.accesslog import AccessLog
from lockgate.proxy.errors import ApiError, ErrorType
from lockgate.proxy.labels import model_label
from lockgate.proxy.metrics import Metrics
from lockgate.proxy.providers.base import Usage
from lockgate.proxy.snapshot import CompiledSnapshot, KeyEntry


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    snapshot: CompiledSnapshot
    method: str
    path: str
    host: str  # a bounded label: the matched host name, or "*"
    started: float = field(default_factory=time.perf_counter)
    entry: KeyEntry | None = None
    model: str = ""
    provider: str = ""
    upstream_model: str = ""
    stream: bool = False
    status: int = 0
    error_type: ErrorType = ""
    error_code: str | None = None
    usage: Usage = field(default_factory=Usage)
    prompt_tokens: int = 0  # the prompt estimate, settled when the upstream reports no usage
    upstream_seconds: float = 0.0  # time spent waiting on upstreams
    ttft: float | None = None
    attempts: int = 0

    def fail(self, error: ApiError) -> None:
        self.status = error.status
        self.error_type = error.error_type
        self.error_code = error.code

    def first_byte(self) -> None:
        if self.ttft is None:
            self.ttft = time.perf_counter() - self.started


def observe(metrics: Metrics, record: RequestRecord, log: AccessLog) -> None:
    """Metrics and the access log line of a finished request."""
    duration = time.perf_counter() - record.started
    consumer = record.entry.key.consumer if record.entry is not None else ""
    # A model the client made up is one value, "unknown"; one that reached a provider was planned, so configured.
    model = record.model if record.provider else model_label(record.snapshot, record.model)
    series = metrics.series(record.host, consumer, record.provider, model, record.upstream_model,
                            str(record.status), record.error_type)
    series.requests += 1
    overhead = max(0.0, duration - record.upstream_seconds)
    metrics.overhead.observe(overhead)
    if record.provider:
        series.duration.observe(duration)
        if record.ttft is not None:
            series.ttft.observe(record.ttft)
        if record.usage.input_tokens or record.usage.output_tokens:
            series.input_tokens.observe(record.usage.input_tokens)
            series.output_tokens.observe(record.usage.output_tokens)
    if log.enabled:
        line = {
            "ts": time.time(),
            "request_id": record.request_id,
            "method": record.method,
            "path": record.path,
            "host": record.host,
            "status": record.status,
            "error_type": record.error_type or None,
            "error_code": record.error_code,
            "key_id": record.entry.key.id if record.entry is not None else None,
            "consumer": consumer or None,
            "model": model or None,
            "provider": record.provider or None,
            "upstream_model": record.upstream_model or None,
            "stream": record.stream,
            "attempts": record.attempts,
            "input_tokens": record.usage.input_tokens,
            "output_tokens": record.usage.output_tokens,
            "tokens_reported": record.usage.reported,
            "duration_ms": round(duration * 1000, 3),
            "ttft_ms": round(record.ttft * 1000, 3) if record.ttft is not None else None,
            "overhead_ms": round(overhead * 1000, 3),
            "config_hash": record.snapshot.config.hash[:12],
        }
        log.write(orjson.dumps(line))
