"""Spans of the MCP gateway: a SERVER span per client request (`{method} {tool}`,
continuing the client's `traceparent`) and a CLIENT span, with `traceparent`,
for every HTTP request the gateway makes upstream meanwhile (upstream MCP
servers and HTTP tools), through aiohttp's request hooks on the MCP pool.
Built only when tracing is on.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import aiohttp
from opentelemetry import context as otel_context
from opentelemetry.trace import Span, SpanKind, set_span_in_context
from yarl import URL

from lockgate.proxy.tracing.request import fail, server_address
from lockgate.proxy.tracing.tracer import Tracing

_REQUEST = otel_context.create_key("lockgate.mcp.request")
_SPAN = "lockgate_span"


def span_name(info: Mapping[str, Any]) -> str:
    method = str(info.get("method") or "mcp")
    tool = info.get("tool")
    return f"{method} {tool}" if tool else method


class McpRequestTrace:
    """One client request's span, current (in the OpenTelemetry context) until `end`."""

    def __init__(self, tracing: Tracing, path: str, headers: Mapping[str, str], info: dict[str, Any]) -> None:
        self.info = info  # filled as the request is read: method, tool, server, consumer
        self.span = tracing.start(f"MCP {path}", tracing.extract(headers), SpanKind.SERVER, {"url.path": path})
        self._token = otel_context.attach(otel_context.set_value(_REQUEST, info, set_span_in_context(self.span)))

    def end(self, status: int, error_type: str | None) -> None:
        otel_context.detach(self._token)
        span, info = self.span, self.info
        if span.is_recording():
            span.update_name(span_name(info))
            method = str(info.get("method") or "")
            facts: dict[str, str | int] = {"http.response.status_code": status}
            if method:
                facts["mcp.method.name"] = method
            if info.get("tool"):
                facts["gen_ai.operation.name"] = "execute_tool"
                facts["gen_ai.tool.name"] = str(info["tool"])
            server = info.get("server")
            if server is not None:
                facts["lockgate.mcp_server"] = server.id
            if info.get("consumer"):
                facts["lockgate.consumer"] = str(info["consumer"])
            if info.get("era"):
                facts["lockgate.mcp_era"] = str(info["era"])
            span.set_attributes(facts)
            if error_type is not None:
                fail(span, error_type)
        span.end()


class McpTracing:
    def __init__(self, tracing: Tracing) -> None:
        self.tracing = tracing

    def begin(self, path: str, headers: Mapping[str, str], info: dict[str, Any]) -> McpRequestTrace:
        return McpRequestTrace(self.tracing, path, headers, info)

    def trace_config(self) -> aiohttp.TraceConfig:
        """Hooks for the MCP pool: a CLIENT span and `traceparent` on requests made while serving a client's."""
        config = aiohttp.TraceConfig()
        config.on_request_start.append(self._start)
        config.on_request_end.append(self._end)
        config.on_request_exception.append(self._exception)
        return config

    async def _start(self, _: aiohttp.ClientSession, trace: SimpleNamespace,
                     params: aiohttp.TraceRequestStartParams) -> None:
        info = otel_context.get_value(_REQUEST)
        if not isinstance(info, dict):
            return  # not within a traced MCP request
        url: URL = params.url
        host, port = server_address(str(url))
        facts = trace.trace_request_ctx if isinstance(trace.trace_request_ctx, dict) else {}
        method = facts.get("method") or params.headers.get("Mcp-Method") or params.method
        tool = facts.get("tool") or params.headers.get("Mcp-Name")
        attributes: dict[str, str | int] = {"http.request.method": params.method, "server.address": host,
                                            "server.port": port, "mcp.method.name": str(method)}
        if tool and method == "tools/call":
            attributes["gen_ai.tool.name"] = str(tool)
        span = self.tracing.start(span_name({"method": method, "tool": tool if method == "tools/call" else None}),
                                  None, SpanKind.CLIENT, attributes)
        self.tracing.propagator.inject(params.headers, set_span_in_context(span))
        setattr(trace, _SPAN, span)

    async def _end(self, _: aiohttp.ClientSession, trace: SimpleNamespace,
                   params: aiohttp.TraceRequestEndParams) -> None:
        span: Span | None = getattr(trace, _SPAN, None)
        if span is not None:
            span.set_attribute("http.response.status_code", params.response.status)
            if params.response.status >= 500:
                fail(span, str(params.response.status))
            span.end()

    async def _exception(self, _: aiohttp.ClientSession, trace: SimpleNamespace,
                         params: aiohttp.TraceRequestExceptionParams) -> None:
        span: Span | None = getattr(trace, _SPAN, None)
        if span is not None:
            fail(span, type(params.exception).__name__)
            span.end()
