"""Span export: batches handed to one background thread that sends them over OTLP.

`http/json` (the default here) is encoded by `encode_json`, which joins
precomputed fragments (a tenth of the CPU of building protobuf messages);
`http/protobuf` and `grpc` go through the official OpenTelemetry OTLP
exporters. A batch leaves when it holds `max_batch` spans or after `delay`
seconds; at most `max_queue` spans wait (more are dropped and counted), so a
collector that is away costs bounded memory and never slows requests.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

from lockgate.proxy.tracing.settings import TracingSettings
from lockgate.proxy.tracing.spans import Span

log = logging.getLogger("lockgate.proxy.tracing")

Send = Callable[[Sequence[Span]], bool]
WARN_EVERY = 60.0  # seconds between warnings about failed exports
_dumps = orjson.dumps
_KINDS = {str: b"stringValue", bool: b"boolValue", int: b"intValue", float: b"doubleValue"}
_prefixes: dict[tuple[str, type], bytes] = {}
# Most attribute values repeat (models, providers, consumers, statuses): their encodings are kept, boundedly.
_encoded: dict[tuple[str, Any], bytes] = {}
_ENCODED_MAX = 8192


# Values seen once (a request's id) are encoded afresh rather than crowding the others out of `_encoded`.
_UNIQUE = frozenset({"lockgate.request_id", "gen_ai.response.time_to_first_chunk", "gen_ai.input.messages",
                     "gen_ai.output.messages"})


def _attribute(key: str, value: Any) -> bytes:
    if key in _UNIQUE:
        return _fresh(key, value)
    done = _encoded.get((key, tuple(value) if type(value) is list else value))
    if done is None:
        if len(_encoded) >= _ENCODED_MAX:
            _encoded.clear()
        done = _encoded[(key, tuple(value) if type(value) is list else value)] = _fresh(key, value)
    return done


def _fresh(key: str, value: Any) -> bytes:
    kind = type(value)
    prefix = _prefixes.get((key, kind))
    if prefix is None:
        name = b"arrayValue" if kind is list else _KINDS.get(kind, b"stringValue")
        prefix = _prefixes[(key, kind)] = b'{"key":' + _dumps(key) + b',"value":{"' + name + b'":'
    if kind is list:
        return prefix + b'{"values":[' + b",".join([b'{"stringValue":' + _dumps(str(v)) + b"}" for v in value]) + b"]}}}"
    if kind not in _KINDS:
        value = str(value)
    return prefix + _dumps(value) + b"}}"


def _attributes(attributes: Mapping[str, Any]) -> bytes:
    return b",".join([_attribute(k, v) for k, v in attributes.items()])


def _span_attributes(span: Span) -> bytes:
    """The span's own attributes and its fixed set's (encoded once per set); a key in both is the span's own."""
    own, fixed = span.attributes, span.fixed
    if fixed is None:
        return _attributes(own)
    shared = fixed.encoded
    if shared is None:
        shared = fixed.encoded = _attributes(fixed.attributes)
    if not own:
        return shared
    if not own.keys() & fixed.attributes.keys():
        return shared + b"," + _attributes(own) if shared else _attributes(own)
    return _attributes(span.all_attributes())


def encode_json(spans: Sequence[Span], resource: Mapping[str, Any], scope: str) -> bytes:
    """An OTLP/JSON ExportTraceServiceRequest (ids in hex, as OTLP/JSON wants them)."""
    parts = []
    for s in spans:
        status = b',"status":{"code":2,"message":' + _dumps(s.description) + b"}" if s.status else b""
        parent = b'"parentSpanId":"%016x",' % s.parent_id if s.parent_id else b""
        parts.append(b'{"traceId":"%032x","spanId":"%016x",%s"name":%s,"kind":%d,"startTimeUnixNano":"%d",'
                     b'"endTimeUnixNano":"%d","attributes":[%s]%s}'
                     % (s.trace_id, s.span_id, parent, _dumps(s.name), s.kind, s.start, s.finish,
                        _span_attributes(s), status))
    return (b'{"resourceSpans":[{"resource":{"attributes":[' + _attributes(resource) + b']},"scopeSpans":[{"scope":'
            b'{"name":' + _dumps(scope) + b'},"spans":[' + b",".join(parts) + b"]}]}]}")


class JsonSender:
    """POSTs OTLP/JSON batches over one kept-alive HTTP connection (the export thread's own; opened again
    when the endpoint closed it)."""

    def __init__(self, settings: TracingSettings, resource: Mapping[str, Any], scope: str) -> None:
        self._settings, self._resource, self._scope = settings, resource, scope
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
        body = encode_json(spans, self._resource, self._scope)
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


class BatchExporter:
    def __init__(self, send: Send, delay: float = 1.0, max_batch: int = 512, max_queue: int = 2048) -> None:
        self._send, self._delay, self._max_batch, self._max_queue = send, delay, max_batch, max_queue
        self._queue: list[Span] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._sending = False
        self._closed = False
        self.dropped = 0
        self.failed = 0
        self._quiet_until = 0.0
        self._thread = threading.Thread(target=self._run, name="lockgate-span-export", daemon=True)
        self._thread.start()

    def add(self, span: Span) -> None:
        """Called as a span ends (on the event loop): an append, and a wake-up when a batch is full."""
        queue = self._queue
        if len(queue) >= self._max_queue:
            self.dropped += 1
            return
        queue.append(span)
        if len(queue) == self._max_batch:
            with self._lock:
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._closed and len(self._queue) < self._max_batch:
                    self._wake.wait(self._delay)
                batch, self._queue = self._queue, []
                self._sending = bool(batch)
                closed = self._closed
            try:
                for start in range(0, len(batch), self._max_batch):
                    self._export(batch[start:start + self._max_batch])
            finally:
                with self._lock:
                    self._sending = False
                    self._idle.notify_all()
            if closed:
                return

    def _export(self, batch: Sequence[Span]) -> None:
        try:
            ok = self._send(batch)
        except Exception as exc:  # noqa: BLE001 - a collector away must never reach requests
            ok = False
            log.debug("span export failed: %s", exc)
        if not ok:
            self.failed += len(batch)
            now = time.monotonic()
            if now >= self._quiet_until:  # a collector that is away is said once a minute, not every batch
                self._quiet_until = now + WARN_EVERY
                log.warning("spans not exported to the OTLP endpoint (%d so far)", self.failed)

    def flush(self, timeout: float = 5.0) -> bool:
        """Export what is queued now; True once it was handed to the endpoint (or failed) in time."""
        with self._lock:
            self._wake.notify()
            return self._idle.wait_for(lambda: not self._queue and not self._sending, timeout)

    def shutdown(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout)
