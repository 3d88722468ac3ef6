"""The gateway as an MCP client of one upstream endpoint, in the era the upstream speaks.

Used where the gateway itself consumes an upstream (aggregate members, and an
upstream whose era differs from the client's). The era is probed once with
`server/discover` and cached; a legacy upstream gets one gateway-owned session,
opened again when the upstream forgets it. The gateway's own credential is
sent, never the client's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from lockgate.proxy.mcp import jsonrpc as rpc
from lockgate.proxy.mcp import sse
from lockgate.proxy.mcp.era import Era, encode_header_value

OnMessage = Callable[[rpc.Message], Awaitable[None]]
ACKNOWLEDGED = "notifications/subscriptions/acknowledged"
CLIENT_INFO = {"name": "lockgate-mcp-gateway", "version": "0.1.0"}


class UpstreamClient:
    def __init__(self, http: aiohttp.ClientSession, url: str, headers: dict[str, str], timeout: float) -> None:
        self.url = url
        self._http = http
        self._headers = headers
        self._timeout = timeout
        self.era: Era | None = None  # the era the gateway speaks to it
        self.eras: frozenset[str] = frozenset()  # every era it speaks
        self._session_id: str | None = None
        self._legacy_version = rpc.LATEST_LEGACY
        self._lock = asyncio.Lock()
        self._next_id = 0

    async def request(self, method: str, params: dict[str, Any], on_message: OnMessage | None = None) -> dict[str, Any]:
        await self._ensure_era()
        if self.era == "modern":
            return await self._send(method, self._modern_params(params), on_message)
        try:
            return await self._send(method, params, on_message)
        except _SessionGone:
            self._session_id = None
            await self._ensure_era()
            return await self._send(method, params, on_message)

    async def _ensure_era(self) -> None:
        if self.era == "modern" or (self.era == "legacy" and self._session_id is not None):
            return
        async with self._lock:
            if self.era is None:
                try:
                    self.era = await self._probe()
                except BaseException:
                    self.era = None
                    raise
            if self.era == "legacy" and self._session_id is None:
                await self._initialize()

    async def detect(self) -> frozenset[str]:
        """The eras the upstream speaks, probed once."""
        await self._ensure_era()
        return self.eras

    async def _probe(self) -> Era:
        """Try server/discover, then initialize: an upstream may speak either era or both."""
        modern = True
        try:
            await self._send("server/discover", self._modern_params({}), None)
        except rpc.RpcError as exc:
            if exc.code == rpc.UPSTREAM_ERROR and "unavailable" in exc.message:
                raise  # down, not legacy: probe again next time
            modern = False
        self.era = "legacy"
        try:
            await self._initialize()
            legacy = True
        except rpc.RpcError:
            legacy = False
        if modern:
            await self.close()  # the probe's session is not needed: modern is spoken
            self._session_id = None
        self.eras = frozenset({"modern"} if modern else set()) | frozenset({"legacy"} if legacy else set())
        return "modern" if modern else "legacy"

    async def _initialize(self) -> None:
        result = await self._send("initialize", {
            "protocolVersion": rpc.LATEST_LEGACY, "capabilities": {}, "clientInfo": CLIENT_INFO}, None, legacy_init=True)
        self._legacy_version = str(result.get("protocolVersion", rpc.LATEST_LEGACY))
        await self._post(rpc.notification("notifications/initialized", {}), None)

    def _modern_params(self, params: dict[str, Any]) -> dict[str, Any]:
        meta = dict(params.get("_meta") or {})
        meta.setdefault(rpc.META_PROTOCOL_VERSION, rpc.LATEST_MODERN)
        meta.setdefault(rpc.META_CLIENT_CAPABILITIES, {})
        meta.setdefault("io.modelcontextprotocol/clientInfo", CLIENT_INFO)
        return {**params, "_meta": meta}

    async def _send(self, method: str, params: dict[str, Any], on_message: OnMessage | None,
                    legacy_init: bool = False) -> dict[str, Any]:
        self._next_id += 1
        message = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        answer = await self._post(message, on_message, legacy_init)
        if answer is None:
            raise rpc.RpcError(rpc.UPSTREAM_ERROR, f"upstream {method}: no response")
        return rpc.result_of(answer)

    def _request_headers(self, message: rpc.Message) -> dict[str, str]:
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json", **self._headers}
        method = str(message.get("method", ""))
        if self.era == "modern" or (self.era is None and method == "server/discover"):
            headers["MCP-Protocol-Version"] = rpc.LATEST_MODERN
            if "id" in message:
                headers["Mcp-Method"] = method
            field = rpc.NAMED_METHODS.get(method)
            name = rpc.params_of(message).get(field) if field else None
            if isinstance(name, str):
                headers["Mcp-Name"] = encode_header_value(name)
        elif method != "initialize":
            headers["MCP-Protocol-Version"] = self._legacy_version
            if self._session_id:
                headers["Mcp-Session-Id"] = self._session_id
        return headers

    async def _post(self, message: rpc.Message, on_message: OnMessage | None,
                    legacy_init: bool = False) -> rpc.Message | None:
        try:
            async with self._http.post(
                self.url, data=rpc.dumps(message), headers=self._request_headers(message),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._timeout, sock_read=self._timeout),
                trace_request_ctx=rpc.trace_facts(message),
            ) as response:
                if response.status == 404 and self._session_id and not legacy_init:
                    raise _SessionGone()
                if legacy_init and response.headers.get("Mcp-Session-Id"):
                    self._session_id = response.headers["Mcp-Session-Id"]
                if response.status == 202 or "id" not in message:
                    return None
                content_type = response.headers.get("Content-Type", "")
                if content_type.startswith("text/event-stream"):
                    return await self._read_stream(response, message["id"], on_message)
                answer = rpc.loads_message((await response.read()).decode(errors="replace"))
                if answer is not None and rpc.is_response(answer):
                    return answer
                raise rpc.RpcError(rpc.UPSTREAM_ERROR, f"upstream answered HTTP {response.status}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise rpc.RpcError(rpc.UPSTREAM_ERROR, f"upstream unavailable: {type(exc).__name__}") from None

    async def _read_stream(self, response: aiohttp.ClientResponse, request_id: Any,
                           on_message: OnMessage | None) -> rpc.Message | None:
        async for event in sse.parse(response.content.iter_any()):
            message = rpc.loads_message(event.data)
            if message is None:
                continue
            if rpc.is_response(message) and message.get("id") == request_id:
                return message
            if rpc.is_request(message):
                # Server-to-client requests cannot reach a client from here: refuse, don't hang.
                await self._post(rpc.error_message(message["id"], rpc.METHOD_NOT_FOUND,
                                                   "not supported through the gateway's aggregate"), None)
            elif on_message is not None:
                await on_message(message)
        return None

    async def changes(self) -> AsyncIterator[rpc.Message]:
        """The upstream's list-changed notifications, as long as its stream stays open.

        Modern: a `subscriptions/listen` request; legacy: the session's GET stream.
        """
        await self._ensure_era()
        if self.era == "modern":
            self._next_id += 1
            message = {"jsonrpc": "2.0", "id": f"lockgate-listen-{self._next_id}", "method": "subscriptions/listen",
                       "params": self._modern_params({"notifications": {
                           "toolsListChanged": True, "promptsListChanged": True, "resourcesListChanged": True}})}
            request = self._http.post(self.url, data=rpc.dumps(message), headers=self._request_headers(message),
                                      timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._timeout))
        else:
            headers = {"Accept": "text/event-stream", **self._headers, "MCP-Protocol-Version": self._legacy_version}
            if self._session_id:
                headers["Mcp-Session-Id"] = self._session_id
            request = self._http.get(self.url, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._timeout))
        try:
            async with request as response:
                if response.status != 200 or not response.headers.get("Content-Type", "").startswith("text/event-stream"):
                    return
                if self.era != "modern":
                    yield rpc.notification(ACKNOWLEDGED, {})  # a legacy stream is live once its headers arrive
                async for event in sse.parse(response.content.iter_any()):
                    incoming = rpc.loads_message(event.data)
                    method = str(incoming.get("method", "")) if incoming is not None else ""
                    if incoming is not None and (method.endswith("/list_changed") or method == ACKNOWLEDGED):
                        yield incoming
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return

    async def close(self) -> None:
        if self.era == "legacy" and self._session_id:
            try:
                async with self._http.delete(self.url, headers={**self._headers, "Mcp-Session-Id": self._session_id},
                                             timeout=aiohttp.ClientTimeout(total=self._timeout)):
                    pass
            except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError):
                pass  # best effort: the upstream expires idle sessions anyway


class _SessionGone(Exception):
    """The upstream no longer knows the gateway's session (404)."""
