"""One request's spans: the SERVER span for the inbound request, its children
(quota admission, endpoint choice, each upstream attempt) and the W3C
`traceparent` handed to upstreams. Made only when tracing is on."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from urllib.parse import urlsplit

from lockgate.api.ir import Provider
from lockgate.proxy.tracing.genai import finish_reasons, operation_name, provider_name
from lockgate.proxy.tracing.spans import CLIENT, INTERNAL, SERVER, AttributeValue, Span
from lockgate.proxy.tracing.tracer import Tracing


def server_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def fail(span: Span, error_type: str, description: str | None = None) -> None:
    span.fail(error_type, description)


class RequestTrace:
    __slots__ = ("tracing", "span", "call", "reasons")

    def __init__(self, tracing: Tracing, name: str, headers: Mapping[str, str],
                 attributes: dict[str, AttributeValue]) -> None:
        self.tracing = tracing
        self.span = tracing.root(name, headers, SERVER, attributes)
        self.call: Span | None = None  # the inference span of the attempt that answered
        self.reasons: list[str] = []

    @property
    def trace_id(self) -> str:
        return self.span.trace_hex

    @property
    def span_id(self) -> str:
        return self.span.span_hex

    @property
    def recording(self) -> bool:
        return self.span.is_recording()

    def child(self, name: str, attributes: dict[str, AttributeValue] | None = None, kind: int = INTERNAL) -> Span:
        return self.tracing.child(self.span, name, kind, attributes)  # type: ignore[arg-type]

    def attempt(self, op: str, upstream: Provider, model: str, url: str, attempt: int, stream: bool) -> Span:
        """An inference span (`{operation} {model}`, kind CLIENT) for one upstream attempt."""
        operation = operation_name(op)
        if not self.span.sampled:
            return self.tracing.child(self.span, operation, CLIENT)
        host, port = server_address(url)
        attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": operation, "gen_ai.provider.name": provider_name(upstream.type, upstream.engine),
            "gen_ai.request.model": model, "server.address": host, "server.port": port,
            "lockgate.provider": upstream.id, "lockgate.attempt": attempt,
        }
        if stream:
            attributes["gen_ai.request.stream"] = True
        if op == "responses" and upstream.type == "openai":
            attributes["openai.api.type"] = "responses"
        return self.tracing.child(self.span, f"{operation} {model}", CLIENT, attributes)

    def ended(self, span: Span, error_type: str | None = None, description: str | None = None) -> None:
        """End a child span, failed with `error_type` when one is given."""
        if error_type is not None:
            span.fail(error_type, description)
        span.end()

    def inject(self, span: Span, headers: MutableMapping[str, str]) -> None:
        """`traceparent` naming `span` as the parent of what the upstream does."""
        span.inject(headers)

    def scan(self, data: bytes) -> None:
        """Finish reasons in answer bytes (whole, or one stream event at a time)."""
        if self.span.sampled and b"_reason" in data:
            for reason in finish_reasons(data):
                if reason not in self.reasons:
                    self.reasons.append(reason)
