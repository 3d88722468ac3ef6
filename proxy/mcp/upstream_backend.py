"""An upstream MCP server consumed by the gateway (aggregate members, era bridging)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from lockgate.proxy.mcp import jsonrpc as rpc
from lockgate.proxy.mcp.backend import CallContext
from lockgate.proxy.mcp.sse_upstream_client import SseUpstreamClient
from lockgate.proxy.mcp.upstream_client import UpstreamClient

# Client _meta an upstream needs to see (what the client can do, how much it wants logged).
FORWARDED_META = (rpc.META_CLIENT_CAPABILITIES, "io.modelcontextprotocol/logLevel", "io.modelcontextprotocol/clientInfo")

# What the gateway's own handshake-free answers (discover, initialize) advertise for it.
CAPABILITIES: dict[str, Any] = {"tools": {"listChanged": False}, "prompts": {"listChanged": False},
                                "resources": {"listChanged": False}, "completions": {}}


class UpstreamBackend:
    """Requests and list changes of one upstream, spoken to by the gateway itself."""

    def __init__(self, client: UpstreamClient | SseUpstreamClient) -> None:
        self.client = client

    def capabilities(self) -> dict[str, Any]:
        return CAPABILITIES

    def notes(self) -> AsyncIterator[rpc.Message]:
        """List-changed notifications (and the stream's acknowledgement) of the upstream."""
        changes = getattr(self.client, "changes", None)
        return changes() if changes is not None else _nothing()

    async def request(self, ctx: CallContext, method: str, params: dict[str, Any]) -> dict[str, Any]:
        params = {k: v for k, v in params.items() if k != "_meta"}
        meta = {k: v for k, v in ctx.meta.items() if k in FORWARDED_META}
        if ctx.progress_token is not None:
            meta["progressToken"] = ctx.progress_token
        if meta:
            params["_meta"] = meta

        async def relay(message: rpc.Message) -> None:
            if message.get("method") == "notifications/progress":
                await ctx.emit(message)

        result = await self.client.request(method, params, relay)
        if self.client.era == "modern":
            # The gateway sets its own cache hints and serverInfo; an input_required result passes unchanged.
            dropped = ("ttlMs", "cacheScope") + (("resultType",) if result.get("resultType") == "complete" else ())
            result = {k: v for k, v in result.items() if k not in dropped}
            upstream_meta = result.get("_meta")
            if isinstance(upstream_meta, dict):
                kept = {k: v for k, v in upstream_meta.items() if k != rpc.META_SERVER_INFO}
                result = {**result, "_meta": kept} if kept else {k: v for k, v in result.items() if k != "_meta"}
        return result


async def _nothing() -> AsyncIterator[rpc.Message]:
    return
    yield
