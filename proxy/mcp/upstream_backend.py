"""An upstream MCP server consumed by the gateway (aggregate members, era bridging)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from lockgate.proxy.mcp import jsonrpc as rpc
from lockgate.proxy.mcp.backend import CallContext
from lockgate.proxy.mcp.sse_upstream_client import SseUpstreamClient
from lockgate.proxy.mcp.upstream_client import UpstreamClient

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
        if ctx.progress_token is not None:
            params["_meta"] = {"progressToken": ctx.progress_token}

        async def relay(message: rpc.Message) -> None:
            if message.get("method") == "notifications/progress":
                await ctx.emit(message)

        result = await self.client.request(method, params, relay)
        if self.client.era == "modern":
            result = {k: v for k, v in result.items() if k not in ("resultType", "ttlMs", "cacheScope")}
            meta = result.get("_meta")
            if isinstance(meta, dict):
                meta = {k: v for k, v in meta.items() if k != rpc.META_SERVER_INFO}
                result = {**result, "_meta": meta} if meta else {k: v for k, v in result.items() if k != "_meta"}
        return result


async def _nothing() -> AsyncIterator[rpc.Message]:
    return
    yield
