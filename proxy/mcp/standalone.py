"""The MCP routes without the data plane: a small `McpHost` and a runnable app.

`StandaloneHost` authenticates keys against the IR and runs model-tool chats
straight against the provider's OpenAI-compatible endpoint, through the quota
service. The data plane's gateway replaces it in `lockgate run`; this one lets
the MCP gateway run alone (`python -m lockgate.proxy.mcp.standalone`).
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from lockgate.api.ir import ConsumerKey, Credentials, GatewayConfig, Provider
from lockgate.proxy.mcp import access, sse
from lockgate.proxy.mcp.host import ChatFailed, ChatRequest
from lockgate.proxy.mcp.routes import install
from lockgate.proxy.quota import AdmitRequest, QuotaRejected, QuotaService, UnlimitedQuota
from lockgate.proxy.source import Snapshot


class StandaloneHost:
    def __init__(self, snapshot: Snapshot, quota: QuotaService | None = None, gateway_name: str = "lockgate") -> None:
        self.gateway_name = gateway_name
        self._snapshot = snapshot
        self._quota = quota or UnlimitedQuota()
        self._http: aiohttp.ClientSession | None = None

    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    def swap(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def authenticate(self, request: web.Request) -> ConsumerKey | None:
        token = access.bearer_token(request.headers.get("Authorization"))
        return access.find_key(self._snapshot.config, token) if token else None

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(auto_decompress=True)
        return self._http

    @property
    def quota(self) -> QuotaService:
        return self._quota

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def chat(self, request: ChatRequest) -> AsyncIterator[str]:
        config, credentials = self._snapshot.config, self._snapshot.credentials
        if request.key.models is not None and not any(fnmatch.fnmatchcase(request.model, g) for g in request.key.models):
            raise ChatFailed(f"this key may not use model {request.model!r}", 403)
        provider, upstream_model = _provider_for(config, request.model)
        model_limits = next(m.limits for m in provider.models if m.name == request.model)
        admit = AdmitRequest(request.key, request.model, provider.id, model_limits,
                             estimated_tokens=len(str(request.messages)) // 4 + (request.max_tokens or 256))
        try:
            reservation = await self._quota.admit(admit)
        except QuotaRejected as exc:
            raise ChatFailed(exc.message, 429) from None
        used = 0
        try:
            async for delta in _stream_chat(self.http, provider, credentials, upstream_model, request):
                used += 1
                yield delta
        finally:
            await self._quota.settle(reservation, used)


def _provider_for(config: GatewayConfig, model: str) -> tuple[Provider, str]:
    for provider in sorted(config.providers, key=lambda p: p.priority):
        for entry in provider.models:
            if entry.name == model:
                return provider, entry.upstream_model
    raise ChatFailed(f"no provider serves model {model!r}", 404)


async def _stream_chat(http: aiohttp.ClientSession, provider: Provider, credentials: Credentials,
                       upstream_model: str, request: ChatRequest) -> AsyncIterator[str]:
    urls = provider.endpoint_urls()
    if not urls:
        raise ChatFailed(f"{provider.id}: no ready endpoint", 503)
    headers = {"Content-Type": "application/json"}
    if provider.credential and provider.credential in credentials.values:
        headers["Authorization"] = f"Bearer {credentials.values[provider.credential]}"
    body: dict[str, object] = {"model": upstream_model, "messages": request.messages, "stream": True}
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    timeout = aiohttp.ClientTimeout(total=provider.timeouts.request, sock_connect=provider.timeouts.connect)
    try:
        async with http.post(f"{urls[0]}/chat/completions", json=body, headers=headers, timeout=timeout) as response:
            if response.status >= 400:
                raise ChatFailed(f"the model answered HTTP {response.status}", response.status)
            async for event in sse.parse(response.content.iter_any()):
                if event.data.strip() == "[DONE]":
                    break
                try:
                    chunk = json.loads(event.data)
                except ValueError:
                    continue
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield text
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise ChatFailed(f"the model is unreachable: {type(exc).__name__}") from None


def make_app(host: StandaloneHost, session_secret: str | None = None, allowed_hosts: tuple[str, ...] = ()) -> web.Application:
    app = web.Application()
    install(app, host, session_secret=session_secret, allowed_hosts=allowed_hosts)

    async def close(_: web.Application) -> None:
        await host.close()

    app.on_cleanup.append(close)
    return app


def load_snapshot(path: str) -> Snapshot:
    """A JSON file {"config": GatewayConfig, "credentials": {"values": {...}}}."""
    data = json.loads(Path(path).read_text())
    return Snapshot(GatewayConfig.model_validate(data["config"]), Credentials.model_validate(data.get("credentials", {})))


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the MCP gateway alone from an IR snapshot file")
    parser.add_argument("--snapshot", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    web.run_app(make_app(StandaloneHost(load_snapshot(args.snapshot))), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
