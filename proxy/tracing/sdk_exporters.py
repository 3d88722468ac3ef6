"""The official OpenTelemetry OTLP exporters, for `http/protobuf` and `grpc`
(imported only when one of them is chosen)."""

from __future__ import annotations

from opentelemetry.sdk.trace.export import SpanExporter

from lockgate.proxy.tracing.settings import TracingSettings


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

