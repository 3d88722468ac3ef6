"""The process' tracer: the sampler, the resource, and the exporter the settings name.

Built only when tracing is on. A request's root span follows the client's
sampling decision when it sent a `traceparent` (the parentbased samplers),
else the configured one; `traceidratio` keeps the traces whose lower 64 bits
of the id fall under ratio * 2^64, as OpenTelemetry's SDKs do, so every
service of a trace decides alike.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping

from lockgate.proxy.tracing.export import BatchExporter, JsonBatchExporter, JsonSender, Send, sdk_sender
from lockgate.proxy.tracing.settings import TracingSettings
from lockgate.proxy.tracing.spans import (INTERNAL, AttributeValue, Fixed, Kind, Parent, Span, new_trace_id,
                                          parse_traceparent)

SCOPE = "lockgate.proxy"
_LOW64 = (1 << 64) - 1


def resource_of(settings: TracingSettings) -> dict[str, AttributeValue]:
    return {**dict(settings.resource_attributes), "service.name": settings.service_name,
            "telemetry.sdk.name": "lockgate", "telemetry.sdk.language": "python",
            "process.runtime.version": platform.python_version()}


class Tracing:
    """`start` spans (roots continue the client's `traceparent`), `flush` and `shutdown` the export."""

    def __init__(self, settings: TracingSettings, send: Send | None = None) -> None:
        self.settings = settings
        self.capture_content = settings.capture_content
        resource = resource_of(settings)
        self.exporter: BatchExporter | JsonBatchExporter
        if send is not None:
            self.exporter = BatchExporter(send)
        elif settings.protocol == "http/json":
            self.exporter = JsonBatchExporter(JsonSender(settings, resource, SCOPE))
        else:
            self.exporter = BatchExporter(sdk_sender(settings, resource, SCOPE))
        self._done = self.exporter.add
        sampler = settings.sampler
        self._parent_based = sampler.startswith("parentbased_")
        self._bound = (0 if sampler.endswith("always_off") else
                       round(settings.sample_ratio * (_LOW64 + 1)) if sampler.endswith("traceidratio") else _LOW64 + 1)

    def root(self, name: str, headers: Mapping[str, str], kind: Kind,
             attributes: dict[str, AttributeValue], fixed: Fixed | None = None) -> Span:
        """The span of an inbound request: a child of the client's `traceparent` when it sent a valid one."""
        parent: Parent | None = parse_traceparent(headers)
        if parent is not None:
            sampled = parent.sampled if self._parent_based else (parent.trace_id & _LOW64) < self._bound
            return Span(parent.trace_id, parent.span_id, name, kind, attributes, sampled, parent.tracestate,
                        self._done, fixed)
        trace_id = new_trace_id()
        return Span(trace_id, 0, name, kind, attributes, (trace_id & _LOW64) < self._bound, "", self._done, fixed)

    def child(self, parent: Span, name: str, kind: Kind = INTERNAL,
              attributes: dict[str, AttributeValue] | None = None, fixed: Fixed | None = None) -> Span:
        return Span(parent.trace_id, parent.span_id, name, kind, attributes if attributes is not None else {},
                    parent.sampled, parent.tracestate, self._done, fixed)

    def flush(self, timeout: float = 5.0) -> bool:
        return self.exporter.flush(timeout)

    def shutdown(self) -> None:
        self.exporter.shutdown()
