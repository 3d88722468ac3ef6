"""Metric label values that no client can multiply.

Every label value a metric or the access log takes from a request goes
through one of these: a name the configuration defines passes, anything
else becomes one fixed value (`unknown`, `other`). So the number of series
is bounded by the configuration, whatever clients send.
"""

from __future__ import annotations

from lockgate.api.ir import McpServer
from lockgate.proxy.snapshot import CompiledSnapshot

UNKNOWN = "unknown"
OTHER = "other"
MAX_UPSTREAM_TOOLS = 64  # tool-name label values per MCP server whose tools an upstream defines

# The MCP methods (both eras) and the HTTP methods of the MCP endpoints.
MCP_METHODS: frozenset[str] = frozenset({
    "initialize", "ping", "server/discover", "subscriptions/listen", "logging/setLevel", "completion/complete",
    "tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list", "resources/read",
    "resources/templates/list", "resources/subscribe", "resources/unsubscribe",
    "notifications/initialized", "notifications/cancelled", "notifications/progress",
    "notifications/roots/list_changed", "response", "GET", "POST", "DELETE",
})
# JSON-RPC error codes the gateway itself answers with (see mcp/jsonrpc.py), and the standard ones.
RPC_CODES: frozenset[int] = frozenset({-32700, -32600, -32601, -32602, -32603, -32000, -32001, -32002, -32003,
                                       -32020, -32021, -32022})


def model_label(snapshot: CompiledSnapshot, model: str) -> str:
    """The model as named in the configuration (a provider's model or an alias in some namespace), else `unknown`.

    Requests that reached a provider need no look-up (their model was planned): callers check that first.
    """
    if not model:
        return model
    for view in snapshot.namespace_views.values():
        if model in view.pool.tiers or model in view.aliases:
            return model
    return UNKNOWN


def mcp_method_label(method: object) -> str:
    return method if isinstance(method, str) and method in MCP_METHODS else OTHER


class ToolLabels:
    """Tool names as labels: those the server's configuration names, and (for tools an upstream
    defines) names whose calls succeeded, at most `cap` per server; anything else is `other`."""

    def __init__(self, cap: int = MAX_UPSTREAM_TOOLS) -> None:
        self.cap = cap
        self._seen: dict[str, set[str]] = {}

    def label(self, server: McpServer | None, tool: object, succeeded: bool) -> str:
        if not tool:
            return ""
        if server is None or not isinstance(tool, str):
            return OTHER
        if tool in configured_tools(server):
            return tool
        if server.kind in ("tools", "modelTools"):  # every tool is configured: nothing to learn
            return OTHER
        seen = self._seen.setdefault(server.id, set())
        if tool in seen:
            return tool
        if succeeded and len(seen) < self.cap:
            seen.add(tool)
            return tool
        return OTHER


def configured_tools(server: McpServer) -> frozenset[str]:
    return frozenset([t.name for t in server.tools] + [t.tool_name for t in server.model_tools])


def mcp_error_label(status: int, rpc_code: object) -> str | None:
    """`http_<status>` for an HTTP failure, `jsonrpc_<code>` for a JSON-RPC error (unlisted codes: `jsonrpc_other`)."""
    if status >= 400:
        return f"http_{status}" if 100 <= status <= 599 else "http_other"
    if rpc_code is None:
        return None
    return f"jsonrpc_{rpc_code}" if isinstance(rpc_code, int) and rpc_code in RPC_CODES else "jsonrpc_other"
