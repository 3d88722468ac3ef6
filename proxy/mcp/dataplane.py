"""`McpHost` over the data plane's `Gateway` (app[GATEWAY]): its keys, quotas, metrics and chat pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from lockgate.api.ir import ConsumerKey, Credentials
from lockgate.common.http import client_session
from lockgate.proxy.auth import authenticate
from lockgate.proxy.errors import ApiError
from lockgate.proxy.gateway import Gateway
from lockgate.proxy.completion import Completion
from lockgate.proxy.internal import chat_deltas, complete
from lockgate.proxy.mcp.host import ChatFailed, ChatRequest, SampleRequest
from lockgate.proxy.quota import QuotaService
from lockgate.proxy.snapshot import CompiledSnapshot, KeyEntry
from lockgate.proxy.source import Snapshot

if TYPE_CHECKING:
    from lockgate.proxy.mcp.tracing import McpTracing


class DataPlaneHost:
    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self.gateway_name = gateway.name
        self._seen: tuple[CompiledSnapshot, Snapshot] | None = None
        self._http: aiohttp.ClientSession | None = None
        self.tracing: McpTracing | None = None
        if gateway.deps.tracing is not None:
            from lockgate.proxy.mcp.tracing import McpTracing  # the SDK, loaded only when tracing is on

            self.tracing = McpTracing(gateway.deps.tracing)

    def snapshot(self) -> Snapshot | None:
        compiled = self._gateway.snapshot
        if compiled is None:
            return None
        if self._seen is None or self._seen[0] is not compiled:
            self._seen = (compiled, Snapshot(compiled.config, Credentials(values=dict(compiled.credentials))))
        return self._seen[1]

    def authenticate(self, request: web.Request) -> ConsumerKey | None:
        compiled = self._gateway.snapshot
        if compiled is None:
            return None
        try:
            return authenticate(compiled, request.headers).key
        except ApiError:
            return None

    @property
    def http(self) -> aiohttp.ClientSession:
        # Its own pool: MCP and tool upstreams want decompressed bodies, the LLM pool does not.
        if self._http is None:
            self._http = client_session(trace_configs=[self.tracing.trace_config()] if self.tracing else ())
        return self._http

    @property
    def quota(self) -> QuotaService:
        return self._gateway.quota

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def chat(self, request: ChatRequest) -> AsyncIterator[str]:
        """The answer's text deltas through the request pipeline; ChatFailed before the first on any refusal."""
        entry = self._entry(request.key)
        body: dict[str, object] = {"model": request.model, "messages": request.messages}
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        try:
            async for delta in chat_deltas(self._gateway, entry, body, request.namespace):
                yield delta
        except ApiError as exc:
            raise ChatFailed(exc.message, exc.status) from None

    async def sample(self, request: SampleRequest) -> Completion:
        try:
            return await complete(self._gateway, self._entry(request.key), request.body, request.candidates,
                                  request.preferences, request.namespace)
        except ApiError as exc:
            raise ChatFailed(exc.message, exc.status) from None

    def _entry(self, key: ConsumerKey) -> KeyEntry:
        compiled = self._gateway.snapshot
        if compiled is not None:
            for entry in compiled.keys_by_hash.values():
                if entry.key.id == key.id:
                    return entry
        raise ChatFailed("the key is no longer configured", 401)

