"""The `tools` kind: MCP tools that call a plain HTTP API."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
from yarl import URL

from lockgate.api.ir import HttpTool
from lockgate.proxy.mcp import http_tools
from lockgate.proxy.mcp import jsonrpc as rpc
from lockgate.proxy.mcp.backend import CallContext, ToolsOnly, text_result

MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class HttpToolsBackend(ToolsOnly):
    def __init__(self, tools: tuple[HttpTool, ...], http: aiohttp.ClientSession,
                 credentials: Mapping[str, str] | None = None) -> None:
        self._tools = {t.name: t for t in tools}
        self._http = http
        self._credentials = credentials or {}
        self._listing = [
            {"name": t.name, "description": t.description, "inputSchema": http_tools.input_schema(t)} for t in tools
        ]

    def tools(self) -> list[dict[str, Any]]:
        return self._listing

    async def call(self, ctx: CallContext, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        tool = self._tools[name]
        try:
            call = http_tools.build_call(tool, http_tools.resolve_args(tool, arguments), self._credentials)
        except rpc.RpcError as exc:
            # Bad arguments are a tool error the model can read and correct, not a protocol error.
            return text_result(f"{tool.name}: {exc.message}", is_error=True)
        try:
            async with self._http.request(
                call.method, URL(call.url, encoded=True), headers=call.headers, data=call.body,
                timeout=aiohttp.ClientTimeout(total=tool.timeout), allow_redirects=False,
                trace_request_ctx={"method": "tools/call", "tool": tool.name},
            ) as response:
                raw = await response.content.read(MAX_RESPONSE_BYTES)
                status, headers = response.status, dict(response.headers)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return text_result(f"{tool.name}: the HTTP API failed: {type(exc).__name__} {exc}", is_error=True)
        text = raw.decode("utf-8", "replace")
        rendered = http_tools.render_response(tool, status, text, headers)
        return text_result(rendered, is_error=status >= 400)


