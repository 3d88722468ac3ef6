"""The gateway as a client of an upstream on the older HTTP+SSE transport (2024-11-05).

One long-lived GET stream per upstream carries every answer; its first event
names the URL to POST messages to (which must stay on the upstream's origin).
Answers are matched to requests by id; a dropped stream fails what is pending
and the next request reconnects.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from lockgate.proxy.mcp import jsonrpc as rpc
from lockgate.proxy.mcp import sse
from lockgate.proxy.mcp.era import Era
from lockgate.proxy.mcp.upstream_client import CLIENT_INFO, OnMessage

SSE_VERSION = "2024-11-05"


class SseUpstreamClient:
    def __init__(self, http: aiohttp.ClientSession, url: str, headers: dict[str, str], timeout: float) -> None:
        self.url = url
        self.era: Era | None = "legacy"
        self.eras: frozenset[str] = frozenset({"legacy"})
        self._http = http
        self._headers = headers
        self._timeout = timeout
        self._post_url: str | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, tuple[asyncio.Future[rpc.Message], OnMessage | None]] = {}
        self._lock = asyncio.Lock()
        self._next_id = 0

    async def detect(self) -> frozenset[str]:
        return self.eras

    async def request(self, method: str, params: dict[str, Any], on_message: OnMessage | None = None) -> dict[str, Any]:
        await self._connect()
        return rpc.result_of(await self._call(method, params, on_message))

    async def _connect(self) -> None:
        if self._reader is not None and not self._reader.done():
            return
        async with self._lock:
            if self._reader is not None and not self._reader.done():
                return
            endpoint: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self._reader = asyncio.ensure_future(self._read(endpoint))
            try:
                self._post_url = await asyncio.wait_for(endpoint, self._timeout)
            except (asyncio.TimeoutError, rpc.RpcError):
                self._reader.cancel()
                raise rpc.RpcError(rpc.UPSTREAM_ERROR, "upstream unavailable: no endpoint event") from None
            result = await self._call("initialize", {"protocolVersion": SSE_VERSION, "capabilities": {},
                                                     "clientInfo": CLIENT_INFO}, None)
            if "error" in result:
                raise rpc.RpcError(rpc.UPSTREAM_ERROR, "upstream refused initialize")
            await self._post(rpc.notification("notifications/initialized", {}))

    async def _call(self, method: str, params: dict[str, Any], on_message: OnMessage | None) -> rpc.Message:
        self._next_id += 1
        request_id = self._next_id
        future: asyncio.Future[rpc.Message] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (future, on_message)
        try:
            await self._post({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            return await asyncio.wait_for(future, self._timeout)
        except asyncio.TimeoutError:
            raise rpc.RpcError(rpc.UPSTREAM_ERROR, "upstream timed out") from None
        finally:
            self._pending.pop(request_id, None)

    async def _post(self, message: rpc.Message) -> None:
        assert self._post_url is not None
        try:
            async with self._http.post(self._post_url, data=rpc.dumps(message), allow_redirects=False,
                                       headers={"Content-Type": "application/json", **self._headers},
                                       timeout=aiohttp.ClientTimeout(total=self._timeout),
                                       trace_request_ctx=rpc.trace_facts(message)) as response:
                if response.status >= 400:
                    raise rpc.RpcError(rpc.UPSTREAM_ERROR, f"upstream answered HTTP {response.status}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise rpc.RpcError(rpc.UPSTREAM_ERROR, f"upstream unavailable: {type(exc).__name__}") from None

    async def _read(self, endpoint: asyncio.Future[str]) -> None:
        try:
            async with self._http.get(self.url, headers={"Accept": "text/event-stream", **self._headers},
                                      timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._timeout)) as response:
                if response.status != 200:
                    raise rpc.RpcError(rpc.UPSTREAM_ERROR, f"upstream answered HTTP {response.status}")
                async for event in sse.parse(response.content.iter_any()):
                    if event.event == "endpoint" and not endpoint.done():
                        endpoint.set_result(self._message_url(event.data.strip()))
                    elif event.event in (None, "message") and event.data:
                        await self._dispatch(event.data)
        except (aiohttp.ClientError, rpc.RpcError, asyncio.TimeoutError) as exc:
            if not endpoint.done():
                endpoint.set_exception(rpc.RpcError(rpc.UPSTREAM_ERROR, str(exc)))
        finally:
            for future, _ in self._pending.values():
                if not future.done():
                    future.set_exception(rpc.RpcError(rpc.UPSTREAM_ERROR, "the upstream closed its stream"))

    def _message_url(self, endpoint: str) -> str:
        """The POST URL, which may not leave the upstream's origin."""
        url = urljoin(self.url, endpoint)
        ours, theirs = urlsplit(self.url), urlsplit(url)
        if (ours.scheme, ours.netloc) != (theirs.scheme, theirs.netloc):
            raise rpc.RpcError(rpc.UPSTREAM_ERROR, "the upstream's endpoint event points at another origin")
        return url

    async def _dispatch(self, data: str) -> None:
        message = rpc.loads_message(data)
        if message is None:
            return
        if rpc.is_response(message):
            pending = self._pending.get(message.get("id"))  # type: ignore[arg-type]
            if pending is not None and not pending[0].done():
                pending[0].set_result(message)
        elif rpc.is_request(message):
            asyncio.ensure_future(self._refuse(message))
        else:
            for _, on_message in list(self._pending.values()):
                if on_message is not None:
                    await on_message(message)

    async def _refuse(self, message: rpc.Message) -> None:
        try:
            await self._post(rpc.error_message(message["id"], rpc.METHOD_NOT_FOUND, "not supported through the gateway"))
        except rpc.RpcError:
            pass

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
