"""Servers the gateway answers itself: the interface and the tool-list base.

A backend answers one JSON-RPC request at a time; it never keeps per-client
state, so gateway-served sessions work on any replica. `serve.py` wraps a
backend in either protocol era.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from lockgate.api.ir import ConsumerKey, McpServer
from lockgate.proxy.mcp import jsonrpc as rpc
from lockgate.proxy.mcp.era import Era

Emit = Callable[[rpc.Message], Awaitable[None]]


async def _drop(message: rpc.Message) -> None:
    return None


@dataclass
class CallContext:
    key: ConsumerKey
    server: McpServer
    era: Era
    progress_token: Any = None
    emit: Emit = _drop  # notifications for the client on this request's stream
    meta: dict[str, Any] = field(default_factory=dict)  # the client's params._meta

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        if self.progress_token is None:
            return
        params: dict[str, Any] = {"progressToken": self.progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self.emit(rpc.notification("notifications/progress", params))


class Backend(Protocol):
    def capabilities(self) -> dict[str, Any]: ...

    async def request(self, ctx: CallContext, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The result of one request, or RpcError."""
        ...


class ToolsOnly:
    """A backend with tools and nothing else (generated HTTP tools, model tools)."""

    def capabilities(self) -> dict[str, Any]:
        return {"tools": {"listChanged": False}}

    def tools(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def call(self, ctx: CallContext, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    async def request(self, ctx: CallContext, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "tools/list":
            return {"tools": self.tools()}
        if method == "tools/call":
            name = params.get("name")
            arguments = params.get("arguments") or {}
            if not isinstance(name, str) or name not in {t["name"] for t in self.tools()}:
                raise rpc.RpcError(rpc.INVALID_PARAMS, f"unknown tool {name!r}")
            if not isinstance(arguments, dict):
                raise rpc.RpcError(rpc.INVALID_PARAMS, "arguments must be an object")
            return await self.call(ctx, name, arguments)
        if method in ("prompts/list", "resources/list", "resources/templates/list"):
            raise rpc.RpcError(rpc.METHOD_NOT_FOUND, f"{method}: this server has only tools", status=404)
        raise rpc.RpcError(rpc.METHOD_NOT_FOUND, f"method not found: {method}", status=404)


def text_result(text: str, is_error: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}]}
    if is_error:
        result["isError"] = True
    return result
