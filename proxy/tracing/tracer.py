"""The process' tracer: an SDK TracerProvider of its own (never the global one),
its sampler, a batch processor and the OTLP exporter the settings name.

Built only when tracing is on; the proxy with tracing off never imports this module.
Spans are exported in the background in batches (`OTEL_BSP_*` tune the batches).
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.context import Context as OtelContext
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from lockgate.proxy.tracing.settings import TracingSettings

Attributes = Mapping[str, AttributeValue]


def make_sampler(settings: TracingSettings) -> Sampler:
    name = settings.sampler
    root: Sampler = ALWAYS_ON
    if name.endswith("always_off"):
        root = ALWAYS_OFF
    elif name.endswith("traceidratio"):
        root = TraceIdRatioBased(settings.sample_ratio)
    return ParentBased(root) if name.startswith("parentbased_") else root


def make_exporter(settings: TracingSettings) -> SpanExporter:
    headers = dict(settings.headers)
    if settings.protocol == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        insecure = settings.endpoint.startswith("http://")
        credentials = None
        if not insecure and settings.certificate:
            with open(settings.certificate, "rb") as ca:
                credentials = grpc.ssl_channel_credentials(ca.read())
        compression = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}.get(
            settings.compression or "", grpc.Compression.NoCompression)
        return GrpcExporter(endpoint=settings.endpoint, insecure=insecure, credentials=credentials, headers=headers,
                            timeout=settings.timeout, compression=compression)
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=settings.endpoint, headers=headers, timeout=settings.timeout,
                            certificate_file=settings.certificate,
                            compression=Compression(settings.compression) if settings.compression
                            else Compression.NoCompression)


class Tracing:
    """`tracer`, the W3C propagator and the content setting; `shutdown()` flushes what is pending."""

    def __init__(self, settings: TracingSettings, exporter: SpanExporter | None = None) -> None:
        resource = Resource.create({**dict(settings.resource_attributes), "service.name": settings.service_name})
        self.provider = TracerProvider(resource=resource, sampler=make_sampler(settings))
        self.provider.add_span_processor(BatchSpanProcessor(exporter or make_exporter(settings)))
        self.tracer: Tracer = self.provider.get_tracer("lockgate.proxy")
        self.propagator = TraceContextTextMapPropagator()
        self.capture_content = settings.capture_content

    def extract(self, headers: Mapping[str, str]) -> OtelContext:
        """The client's `traceparent` (and `tracestate`), continued; an invalid one is ignored."""
        return self.propagator.extract(headers)

    def start(self, name: str, parent: OtelContext | None, kind: SpanKind = SpanKind.INTERNAL,
              attributes: Attributes | None = None) -> Span:
        return self.tracer.start_span(name, parent, kind, attributes)

    def flush(self, timeout_ms: int = 5000) -> bool:
        return self.provider.force_flush(timeout_ms)

    def shutdown(self) -> None:
        self.provider.shutdown()
