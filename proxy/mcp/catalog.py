"""The MCP market: the servers (and tools) a key may use, for GET /v1/mcp/servers."""

from __future__ import annotations

import asyncio
from typing import Any

from lockgate.api.ir import ConsumerKey, GatewayConfig, McpServer
from lockgate.proxy.mcp import access
from lockgate.proxy.mcp import jsonrpc as rpc
from lockgate.proxy.mcp.backend import CallContext
from lockgate.proxy.mcp.gateway import McpGateway

LIST_TIMEOUT = 5.0


async def catalog_entries(gw: McpGateway, config: GatewayConfig, key: ConsumerKey, base_url: str) -> list[dict[str, Any]]:
    servers = [s for s in config.mcp_servers if access.may_use_server(key, s)]
    tools = await asyncio.gather(*(_tools(gw, key, s) for s in servers))
    return [
        {
            "id": s.id,
            "name": s.name,
            "description": s.description,
            "kind": s.kind,
            "url": f"{base_url}{s.path}/mcp",
            "sseUrl": f"{base_url}{s.path}/sse",
            "tools": t,
        }
        for s, t in zip(servers, tools)
    ]


async def _tools(gw: McpGateway, key: ConsumerKey, server: McpServer) -> list[dict[str, Any]] | None:
    """Name and description of each tool the key may call; None when the server cannot be reached."""
    try:
        result = await asyncio.wait_for(
            gw.backend(server).request(CallContext(key, server, "modern"), "tools/list", {}), LIST_TIMEOUT)
    except (rpc.RpcError, asyncio.TimeoutError):
        return None
    listed = gw.filter_result(key, server, "tools/list", result).get("tools", [])
    return [{"name": t.get("name"), "description": t.get("description", "")} for t in listed]
