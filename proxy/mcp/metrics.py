"""Per server and tool: calls, errors, duration; and one access log line per request.

Label values are bounded by the configuration: callers pass them through `lockgate.proxy.labels`."""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY, CollectorRegistry

from lockgate.proxy.labels import ToolLabels
from lockgate.proxy.metrics import CounterFamily, HistogramFamily

access_log = logging.getLogger("lockgate.mcp.access")
MCP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class McpMetrics:
    """Lock-free families (`lockgate.proxy.metrics`) in the registry given: the data plane's, or the process'."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        labels = ("gateway", "server", "method", "tool")
        self.calls = CounterFamily("lockgate_mcp_requests_total", "MCP requests by server, method and tool.",
                                   labels + ("status",), registry)
        self.errors = CounterFamily("lockgate_mcp_errors_total", "MCP requests that ended in an error.",
                                    labels + ("error_type",), registry)
        self.duration = HistogramFamily("lockgate_mcp_request_duration_seconds", "Time to answer an MCP request.",
                                        labels, MCP_BUCKETS, registry)
        self.tools = ToolLabels()  # tool label values: bounded per server

    def record(self, gateway: str, server: str, method: str, tool: str, status: str, seconds: float,
               error_type: str | None, consumer: str, era: str) -> None:
        self.calls.cell((gateway, server, method, tool, status)).value += 1
        self.duration.histogram((gateway, server, method, tool)).observe(seconds)
        if error_type is not None:
            self.errors.cell((gateway, server, method, tool, error_type)).value += 1
        access_log.info("mcp server=%s consumer=%s era=%s method=%s tool=%s status=%s error=%s duration_ms=%.1f",
                        server, consumer, era, method, tool or "-", status, error_type or "-", seconds * 1000)


_shared: McpMetrics | None = None


def shared_metrics() -> McpMetrics:
    """One set per process: metric names can be registered only once in a registry."""
    global _shared
    if _shared is None:
        _shared = McpMetrics()
    return _shared
