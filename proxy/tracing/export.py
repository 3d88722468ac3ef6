"""Span export: batches handed to one background thread that sends them over OTLP.

`http/json` (the default here) is encoded by `otlp_json`, which joins kept
fragments (a tenth of the CPU of building protobuf messages), on the event
loop in slices of `SLICE` spans, each a callback of its own scheduled once
that many spans ended (never within a request's own work); the thread joins
the slices and does the blocking I/O. Encoding in the thread made the event
loop wait for the interpreter lock on every wake-up while a batch was encoded.
`http/protobuf` and `grpc` go through the official OpenTelemetry OTLP
exporters, in the thread. A batch leaves when it holds `max_batch` spans or
after `delay` seconds; at most `max_queue` spans wait (more are dropped and
counted), so a collector that is away costs bounded memory and never slows
requests.
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import logging
import ssl
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from lockgate.proxy.tracing.otlp_json import Envelope, encode_spans
from lockgate.proxy.tracing.settings import TracingSettings
from lockgate.proxy.tracing.spans import Span

log = logging.getLogger("lockgate.proxy.tracing")

Send = Callable[[Sequence[Span]], bool]
WARN_EVERY = 60.0  # seconds between warnings about failed exports
SLICE = 64  # spans encoded in one event-loop callback (well under a millisecond)
Batch = TypeVar("Batch")
class JsonSender:
    """POSTs OTLP/JSON batches over one kept-alive HTTP connection (the export thread's own; opened again
    when the endpoint closed it)."""

    def __init__(self, settings: TracingSettings, resource: Mapping[str, Any], scope: str) -> None:
        self._settings = settings
        self._envelope = Envelope(resource, scope)
        self._headers = {"Content-Type": "application/json", **dict(settings.headers)}
        if settings.compression:
            self._headers["Content-Encoding"] = settings.compression
        url = urlsplit(settings.endpoint)
        self._https = url.scheme == "https"
        self._host, self._port = url.hostname or "localhost", url.port or (443 if self._https else 80)
        self._target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self._context: ssl.SSLContext | None = None
        if self._https:
            self._context = ssl.create_default_context(cafile=settings.certificate)
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._settings.timeout,
                                               context=self._context)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._settings.timeout)

    def __call__(self, spans: Sequence[Span]) -> bool:
        return self.post([encode_spans(spans)])

    def post(self, slices: Sequence[bytes]) -> bool:
        """One request of the spans encoded in `slices` (`encode_spans`'s)."""
        body = self._envelope.wrap(slices)
        if self._settings.compression == "gzip":
            body = gzip.compress(body, 5)
        elif self._settings.compression == "deflate":
            body = zlib.compress(body)
        reused = self._connection is not None
        try:
            return self._post(body)
        except (OSError, http.client.HTTPException):
            self.close()
            if not reused:
                raise
        return self._post(body)  # the kept connection had been closed by the endpoint: once more on a new one

    def _post(self, body: bytes) -> bool:
        connection = self._connection
        if connection is None:
            connection = self._connection = self._connect()
        connection.request("POST", self._target, body, self._headers)
        response = connection.getresponse()
        response.read()
        if response.will_close:
            self.close()
        return bool(200 <= response.status < 300)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def json_sender(settings: TracingSettings, resource: Mapping[str, Any], scope: str) -> Send:
    return JsonSender(settings, resource, scope)


def sdk_sender(settings: TracingSettings, resource: Mapping[str, Any], scope: str) -> Send:
    """`http/protobuf` and `grpc`: the official OTLP exporters, fed SDK spans made from ours."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    from lockgate.proxy.tracing.sdk_exporters import make_exporter

    exporter = make_exporter(settings)
    sdk_resource = Resource.create(dict(resource))
    sdk_scope = InstrumentationScope(scope)
    kinds = {1: SpanKind.INTERNAL, 2: SpanKind.SERVER, 3: SpanKind.CLIENT}
    sampled = TraceFlags(TraceFlags.SAMPLED)

    def readable(s: Span) -> ReadableSpan:
        return ReadableSpan(
            name=s.name, context=SpanContext(s.trace_id, s.span_id, False, sampled),
            parent=SpanContext(s.trace_id, s.parent_id, True, sampled) if s.parent_id else None,
            resource=sdk_resource, attributes=s.all_attributes(), kind=kinds[s.kind], instrumentation_scope=sdk_scope,
            status=Status(StatusCode.ERROR, s.description) if s.status else Status(StatusCode.UNSET),
            start_time=s.start, end_time=s.finish)

    def send(spans: Sequence[Span]) -> bool:
        return exporter.export([readable(s) for s in spans]) == SpanExportResult.SUCCESS

    return send


class _Exporter(Generic[Batch]):
    """The export thread: it wakes when `max_batch` spans are ready or after `delay` seconds, takes what
    is queued and sends it in batches of at most `max_batch` spans."""

    def __init__(self, send: Callable[[Batch], bool], delay: float, max_batch: int, max_queue: int) -> None:
        self._send, self._delay, self._max_batch, self._max_queue = send, delay, max_batch, max_queue
        self._spans: deque[Span] = deque()  # ended, not yet encoded (append and popleft are atomic)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._sending = False
        self._closed = False
        self._flushing = False  # a flush asked while the thread was busy is not lost
        self.dropped = 0
        self.failed = 0
        self._quiet_until = 0.0
        self._thread = threading.Thread(target=self._run, name="lockgate-span-export", daemon=True)
        self._thread.start()

    def _waiting(self) -> int:
        return len(self._spans)

    def _batches(self) -> Iterator[tuple[Batch, int]]:
        raise NotImplementedError

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._closed and not self._flushing and self._waiting() < self._max_batch:
                    self._wake.wait(self._delay)
                self._sending, self._flushing = True, False
                closed = self._closed
            try:
                for batch, count in self._batches():
                    self._export(batch, count)
            finally:
                with self._lock:
                    self._sending = False
                    self._idle.notify_all()
            if closed:
                return

    def _take_spans(self) -> list[Span]:
        spans, popleft = self._spans, self._spans.popleft
        return [popleft() for _ in range(len(spans))]

    def _export(self, batch: Batch, count: int) -> None:
        try:
            ok = self._send(batch)
        except Exception as exc:  # noqa: BLE001 - a collector away must never reach requests
            ok = False
            log.debug("span export failed: %s", exc)
        if not ok:
            self.failed += count
            now = time.monotonic()
            if now >= self._quiet_until:  # a collector that is away is said once a minute, not every batch
                self._quiet_until = now + WARN_EVERY
                log.warning("spans not exported to the OTLP endpoint (%d so far)", self.failed)

    def flush(self, timeout: float = 5.0) -> bool:
        """Export what is queued now; True once it was handed to the endpoint (or failed) in time."""
        with self._lock:
            self._flushing = True
            self._wake.notify()
            return self._idle.wait_for(lambda: not self._waiting() and not self._sending, timeout)

    def shutdown(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout)


class BatchExporter(_Exporter[Sequence[Span]]):
    """Spans handed as they are to `send` (the official exporters', or a test's), in the thread."""

    def __init__(self, send: Send, delay: float = 1.0, max_batch: int = 512, max_queue: int = 2048) -> None:
        super().__init__(send, delay, max_batch, max_queue)

    def add(self, span: Span) -> None:
        """Called as a span ends (on the event loop): an append, and a wake-up when a batch is full."""
        spans = self._spans
        if len(spans) >= self._max_queue:
            self.dropped += 1
            return
        spans.append(span)
        if len(spans) == self._max_batch:
            with self._lock:
                self._wake.notify()

    def _batches(self) -> Iterator[tuple[Sequence[Span], int]]:
        spans = self._take_spans()
        for start in range(0, len(spans), self._max_batch):
            batch = spans[start:start + self._max_batch]
            yield batch, len(batch)


class JsonBatchExporter(_Exporter[Sequence[bytes]]):
    """OTLP/JSON: spans encoded on the event loop in slices as they end; the thread joins and posts them."""

    def __init__(self, sender: JsonSender, delay: float = 1.0, max_batch: int = 512, max_queue: int = 2048) -> None:
        self._slices: deque[tuple[bytes, int]] = deque()
        self._encoded = 0  # spans in `_slices` (changed under the lock)
        self._scheduled = False
        super().__init__(sender.post, delay, max_batch, max_queue)  # (starts the thread)

    def _waiting(self) -> int:
        return self._encoded + len(self._spans)

    def add(self, span: Span) -> None:
        """Called as a span ends (on the event loop): an append; every `SLICE` spans, an encoding scheduled."""
        spans = self._spans
        if len(spans) + self._encoded >= self._max_queue:
            self.dropped += 1
            return
        spans.append(span)
        if len(spans) >= SLICE and not self._scheduled:
            self._schedule()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an event loop: the thread encodes them
            return
        self._scheduled = True
        loop.call_soon(self._encode_slice)

    def _encode_slice(self) -> None:
        self._scheduled = False
        spans = self._spans
        popleft = spans.popleft
        taken = [popleft() for _ in range(min(SLICE, len(spans)))]
        if taken:
            encoded = encode_spans(taken)
            with self._lock:
                self._slices.append((encoded, len(taken)))
                self._encoded += len(taken)
                if self._encoded >= self._max_batch:
                    self._wake.notify()
        if len(spans) >= SLICE:
            self._schedule()

    def _batches(self) -> Iterator[tuple[Sequence[bytes], int]]:
        with self._lock:
            slices = [self._slices.popleft() for _ in range(len(self._slices))]
            self._encoded -= sum(n for _, n in slices)
        rest = self._take_spans()  # the few that ended since the last slice (or all, off the event loop)
        slices += [(encode_spans(rest[i:i + SLICE]), len(rest[i:i + SLICE])) for i in range(0, len(rest), SLICE)]
        batch: list[bytes] = []
        count = 0
        for encoded, n in slices:
            if count and count + n > self._max_batch:
                yield batch, count
                batch, count = [], 0
            batch.append(encoded)
            count += n
        if batch:
            yield batch, count
