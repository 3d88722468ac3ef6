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

from lockgate.proxy.tracing.request import server_address
from lockgate.proxy.tracing.spans import CLIENT, CURRENT, SERVER, AttributeValue, Span
from lockgate.proxy.tracing.tracer import Tracing

_SPAN = "lockgate_span"


def span_name(method: str, tool: Any) -> str:
    return f"{method} {tool}" if tool else method or "mcp"


class McpRequestTrace:
    """One client request's span, current (for the upstream hooks) until `end`."""

    def __init__(self, tracing: Tracing, path: str, headers: Mapping[str, str], info: dict[str, Any]) -> None:
        self.info = info  # filled as the request is read: method, tool, server, consumer
        self.span = tracing.root(f"MCP {path}", headers, SERVER, {"url.path": path})
        self._token = CURRENT.set(self.span)

    def end(self, status: int, error_type: str | None) -> None:
        CURRENT.reset(self._token)
        span, info = self.span, self.info
        if span.is_recording():
            method = str(info.get("method") or "")
            span.update_name(span_name(method, info.get("tool")))
            facts: dict[str, AttributeValue] = {"http.response.status_code": status}
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
                span.fail(error_type)
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
        parent = CURRENT.get()
        if parent is None:
            return  # not within a traced MCP request
        host, port = server_address(str(params.url))
        facts = trace.trace_request_ctx if isinstance(trace.trace_request_ctx, dict) else {}
        method = str(facts.get("method") or params.headers.get("Mcp-Method") or params.method)
        tool = facts.get("tool") or params.headers.get("Mcp-Name") if method == "tools/call" else None
        attributes: dict[str, AttributeValue] = {"http.request.method": params.method, "server.address": host,
                                                 "server.port": port, "mcp.method.name": method}
        if tool:
            attributes["gen_ai.tool.name"] = str(tool)
        span = self.tracing.child(parent, span_name(method, tool), CLIENT, attributes)
        span.inject(params.headers)
        setattr(trace, _SPAN, span)

    async def _end(self, _: aiohttp.ClientSession, trace: SimpleNamespace,
                   params: aiohttp.TraceRequestEndParams) -> None:
        span: Span | None = getattr(trace, _SPAN, None)
        if span is not None:
            span.set_attribute("http.response.status_code", params.response.status)
            if params.response.status >= 500:
                span.fail(str(params.response.status))
            span.end()

    async def _exception(self, _: aiohttp.ClientSession, trace: SimpleNamespace,
                         params: aiohttp.TraceRequestExceptionParams) -> None:
        span: Span | None = getattr(trace, _SPAN, None)
        if span is not None:
            span.fail(type(params.exception).__name__)
            span.end()
