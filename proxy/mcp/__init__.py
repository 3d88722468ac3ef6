"""The MCP gateway: MCPServers published at <path>/mcp (both protocol eras),
<path>/sse + <path>/message (HTTP+SSE), and the catalog at /v1/mcp/servers.

The proxy's `build_app` calls `install(app)`, and the data plane's gateway at
app[GATEWAY] supplies keys, quotas, metrics and the chat pipeline (through
`dataplane.DataPlaneHost`). Anything else that satisfies `host.McpHost` can
stand in for it: `install(app, host)`. See docs/mcp.md.
"""

from lockgate.proxy.mcp.host import ChatFailed, ChatRequest, McpHost
from lockgate.proxy.mcp.routes import CATALOG_PATH, install

__all__ = ["install", "McpHost", "ChatRequest", "ChatFailed", "CATALOG_PATH"]
