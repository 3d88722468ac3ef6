"""One request's spans: the SERVER span for the inbound request, its children
(quota admission, endpoint choice, each upstream attempt) and the W3C
`traceparent` handed to upstreams. Made only when tracing is on."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from urllib.parse import urlsplit

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context

from lockgate.api.ir import Provider
from lockgate.proxy.tracing.genai import finish_reasons, operation_name, provider_name
from lockgate.proxy.tracing.tracer import Attributes, Tracing


def server_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def fail(span: Span, error_type: str, description: str | None = None) -> None:
    """Mark a span failed as the conventions say: `error.type` and an ERROR status."""
    if span.is_recording():
        span.set_attribute("error.type", error_type or "_OTHER")
        span.set_status(Status(StatusCode.ERROR, description))


class RequestTrace:
    __slots__ = ("tracing", "span", "parent", "call", "reasons", "trace_id", "span_id")

    def __init__(self, tracing: Tracing, name: str, headers: Mapping[str, str], attributes: Attributes) -> None:
        self.tracing = tracing
        self.span = tracing.start(name, tracing.extract(headers), SpanKind.SERVER, attributes)
        self.parent = set_span_in_context(self.span)
        self.call: Span | None = None  # the inference span of the attempt that answered
        self.reasons: list[str] = []
        context = self.span.get_span_context()
        self.trace_id = format(context.trace_id, "032x")
        self.span_id = format(context.span_id, "016x")

    @property
    def recording(self) -> bool:
        return self.span.is_recording()

    def child(self, name: str, attributes: Attributes | None = None, kind: SpanKind = SpanKind.INTERNAL) -> Span:
        return self.tracing.start(name, self.parent, kind, attributes)

    def attempt(self, op: str, upstream: Provider, model: str, url: str, attempt: int, stream: bool) -> Span:
        """An inference span (`{operation} {model}`, kind CLIENT) for one upstream attempt."""
        operation = operation_name(op)
        provider = provider_name(upstream.type, upstream.engine)
        host, port = server_address(url)
        attributes: dict[str, str | int | bool] = {
            "gen_ai.operation.name": operation, "gen_ai.provider.name": provider, "gen_ai.request.model": model,
            "server.address": host, "server.port": port, "lockgate.provider": upstream.id,
            "lockgate.attempt": attempt,
        }
        if stream:
            attributes["gen_ai.request.stream"] = True
        if op == "responses" and provider == "openai":
            attributes["openai.api.type"] = "responses"
        return self.tracing.start(f"{operation} {model}", self.parent, SpanKind.CLIENT, attributes)

    def ended(self, span: Span, error_type: str | None = None, description: str | None = None) -> None:
        """End a child span, failed with `error_type` when one is given."""
        if error_type is not None:
            fail(span, error_type, description)
        span.end()

    def inject(self, span: Span, headers: MutableMapping[str, str]) -> None:
        """`traceparent` naming `span` as the parent of what the upstream does."""
        self.tracing.propagator.inject(headers, set_span_in_context(span))

    def scan(self, data: bytes) -> None:
        """Finish reasons in answer bytes (whole, or one stream event at a time)."""
        if b"_reason" in data:
            for reason in finish_reasons(data):
                if reason not in self.reasons:
                    self.reasons.append(reason)
