"""The MCP gateway: MCPServers published at <path>/mcp (both protocol eras),
<path>/sse + <path>/message (HTTP+SSE), and the catalog at /v1/mcp/servers.

The proxy calls `install(app, host)` with its gateway object as `host`
(see `host.McpHost`).
"""

from lockgate.proxy.mcp.host import ChatFailed, ChatRequest, McpHost
from lockgate.proxy.mcp.routes import CATALOG_PATH, install

__all__ = ["install", "McpHost", "ChatRequest", "ChatFailed", "CATALOG_PATH"]
