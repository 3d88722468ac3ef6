"""One request's spans: the SERVER span for the inbound request, its children
(quota admission, endpoint choice, each upstream attempt) and the W3C
`traceparent` handed to upstreams. Made only when tracing is on.

What many requests share (method, path, host and Route; consumer, model and
provider; an attempt's operation, provider and upstream address) goes into
`Fixed` attribute sets looked up by a key of those values, so a request builds
a dict of only its own facts and the exporter encodes the shared ones once.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from urllib.parse import urlsplit

from lockgate.api.ir import Provider
from lockgate.proxy.tracing.genai import finish_reasons, operation_name, provider_name
from lockgate.proxy.tracing.spans import CLIENT, INTERNAL, SERVER, AttributeValue, Fixed, FixedCache, Span
from lockgate.proxy.tracing.tracer import Tracing

_FIXED = FixedCache()


def server_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def fail(span: Span, error_type: str, description: str | None = None) -> None:
    span.fail(error_type, description)


def _inbound(method: str, path: str, host: str, route: str | None) -> Fixed:
    key = ("in", method, path, host, route)
    fixed = _FIXED.get(key)
    if fixed is None:
        attributes: dict[str, AttributeValue] = {"http.request.method": method, "url.path": path,
                                                 "lockgate.host": host}
        if route is not None:
            attributes["lockgate.route"] = route
        fixed = _FIXED.put(key, attributes)
    return fixed


def _attempt(op: str, upstream: Provider, model: str, url: str, stream: bool) -> tuple[Fixed, str]:
    key = ("attempt", op, upstream.id, upstream.type, upstream.engine, model, url, stream)
    fixed = _FIXED.get(key)
    operation = operation_name(op)
    if fixed is None:
        host, port = server_address(url)
        attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": operation, "gen_ai.provider.name": provider_name(upstream.type, upstream.engine),
            "gen_ai.request.model": model, "server.address": host, "server.port": port,
            "lockgate.provider": upstream.id,
        }
        if stream:
            attributes["gen_ai.request.stream"] = True
        if op == "responses" and upstream.type == "openai":
            attributes["openai.api.type"] = "responses"
        fixed = _FIXED.put(key, attributes)
    return fixed, f"{operation} {model}"


def answered(inbound: Fixed | None, consumer: str | None, key_id: str | None, model: str | None,
             provider: str | None, upstream_model: str | None, stream: bool) -> Fixed:
    """The SERVER span's shared facts once the request is done: `inbound`'s and who asked for what, served by whom."""
    key = ("done", inbound, consumer, key_id, model, provider, upstream_model, stream)
    fixed = _FIXED.get(key)
    if fixed is None:
        attributes: dict[str, AttributeValue] = dict(inbound.attributes) if inbound is not None else {}
        if consumer is not None and key_id is not None:
            attributes["lockgate.consumer"] = consumer
            attributes["lockgate.key_id"] = key_id
        if model:
            attributes["gen_ai.request.model"] = model
        if provider:
            attributes["lockgate.provider"] = provider
            attributes["lockgate.upstream_model"] = upstream_model or ""
        if stream:
            attributes["gen_ai.request.stream"] = True
        fixed = _FIXED.put(key, attributes)
    return fixed


class RequestTrace:
    __slots__ = ("tracing", "span", "call", "reasons")

    def __init__(self, tracing: Tracing, method: str, path: str, host: str, route: str | None, request_id: str,
                 headers: Mapping[str, str]) -> None:
        self.tracing = tracing
        self.span = tracing.root(f"{method} {path}", headers, SERVER, {"lockgate.request_id": request_id},
                                 _inbound(method, path, host, route))
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
        if not self.span.sampled:
            return self.tracing.child(self.span, op, CLIENT)
        fixed, name = _attempt(op, upstream, model, url, stream)
        return self.tracing.child(self.span, name, CLIENT, {"lockgate.attempt": attempt}, fixed)

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
        if self.span.sampled:
            for reason in finish_reasons(data):
                if reason not in self.reasons:
                    self.reasons.append(reason)
