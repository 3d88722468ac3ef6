"""The MCP gateway's state: signer, metrics, and backends built per configuration."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from typing import TYPE_CHECKING

from lockgate.api.ir import ConsumerKey, Credentials, GatewayConfig, McpServer, McpUpstream, RateLimits, namespace_of
from lockgate.proxy.mcp import access
from lockgate.proxy.mcp import jsonrpc as rpc
from lockgate.proxy.mcp.aggregate import AggregateBackend, Member
from lockgate.proxy.mcp.backend import Backend
from lockgate.proxy.mcp.host import McpHost
from lockgate.proxy.mcp.input_relay import InputRelay
from lockgate.proxy.mcp.metrics import McpMetrics, shared_metrics
from lockgate.proxy.mcp.model_tools import ModelToolsBackend
from lockgate.proxy.mcp.sampling import Sampler
from lockgate.proxy.mcp.sse_upstream_client import SseUpstreamClient
from lockgate.proxy.mcp.session_token import SessionSigner, session_key
from lockgate.proxy.mcp.tools_backend import HttpToolsBackend
from lockgate.proxy.mcp.upstream_backend import UpstreamBackend
from lockgate.proxy.mcp.upstream_client import UpstreamClient
from lockgate.proxy.quota import AdmitRequest, QuotaRejected, Reservation
from lockgate.proxy.source import Snapshot

if TYPE_CHECKING:
    from lockgate.proxy.mcp.tracing import McpTracing

DEFAULT_MAX_BODY = 4 * 1024 * 1024


class McpGateway:
    def __init__(self, host: McpHost, session_secret: str | None = None, allowed_hosts: Iterable[str] = (),
                 max_body_bytes: int = DEFAULT_MAX_BODY, metrics: McpMetrics | None = None) -> None:
        self.host = host
        self.signer = SessionSigner(session_key(session_secret))
        self.extra_hosts = tuple(allowed_hosts)
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics or shared_metrics()
        self.inputs = InputRelay()
        self.sampler = Sampler(host)
        self._snapshot: Snapshot | None = None
        self._built_for: tuple[str, str] | None = None
        self._backends: dict[str, Backend] = {}
        self._by_path: dict[str, McpServer] = {}
        self._clients: dict[tuple[str, str, str], UpstreamClient | SseUpstreamClient] = {}
        self.tracing: McpTracing | None = None  # spans of MCP requests (None: tracing off)

    # -- configuration ------------------------------------------------------------------

    def config(self) -> tuple[GatewayConfig, Credentials]:
        snapshot = self.host.snapshot()
        if snapshot is None:
            raise rpc.RpcError(rpc.INTERNAL_ERROR, "the gateway has no configuration yet", status=503)
        if snapshot is not self._snapshot:
            self._snapshot = snapshot
            self._refresh(snapshot.config, snapshot.credentials)
        return snapshot.config, snapshot.credentials

    def server_at(self, path: str) -> McpServer | None:
        self.config()
        return self._by_path.get(path.rstrip("/"))

    def server(self, server_id: str) -> McpServer | None:
        config, _ = self.config()
        return next((s for s in config.mcp_servers if s.id == server_id), None)

    def _refresh(self, config: GatewayConfig, credentials: Credentials) -> None:
        marker = (config.hash or config.content_hash(), credentials.content_hash())
        if marker == self._built_for:
            return
        self._built_for = marker
        self._backends = {}
        self._by_path = {s.path.rstrip("/"): s for s in config.mcp_servers}
        self._clients = {}

    def upstream_headers(self, upstream: McpUpstream) -> dict[str, str]:
        """The gateway's own credential for an upstream (never the client's)."""
        if upstream.auth is None:
            return {}
        _, credentials = self.config()
        value = credentials.values.get(upstream.auth.credential)
        if value is None:
            raise rpc.RpcError(rpc.UPSTREAM_ERROR, "the upstream credential is missing")
        return {upstream.auth.header: f"{upstream.auth.scheme} {value}".strip() if upstream.auth.scheme else value}

    def upstream_client(self, url: str, upstream: McpUpstream) -> UpstreamClient | SseUpstreamClient:
        headers = self.upstream_headers(upstream)
        key = (url, upstream.transport, repr(sorted(headers.items())))
        client = self._clients.get(key)
        if client is None:
            kind = SseUpstreamClient if upstream.transport == "sse" else UpstreamClient
            client = self._clients[key] = kind(self.host.http, url, headers, upstream.timeout)
        return client

    def backend(self, server: McpServer, depth: int = 0) -> Backend:
        self.config()
        backend = self._backends.get(server.id)
        if backend is None:
            backend = self._backends[server.id] = self._build(server, depth)
        return backend

    def _build(self, server: McpServer, depth: int) -> Backend:
        if server.kind == "tools":
            return HttpToolsBackend(server.tools, self.host.http, self.config()[1].values)
        if server.kind == "modelTools":
            return ModelToolsBackend(server.model_tools, self.host, namespace_of(server.id))
        if server.kind == "upstream":
            assert server.upstream is not None and server.upstream.urls, f"{server.id}: no upstream endpoints"
            return UpstreamBackend(self.upstream_client(server.upstream.urls[0], server.upstream))
        if depth > 0:
            raise rpc.RpcError(rpc.INTERNAL_ERROR, f"{server.id}: aggregates cannot nest")
        members = []
        for member in server.members:
            target = self.server(member.server)
            if target is None or (target.kind == "upstream" and not (target.upstream and target.upstream.urls)):
                continue
            members.append(Member(member.prefix, self.backend(target, depth + 1)))
        return AggregateBackend(members)

    # -- policy -------------------------------------------------------------------------

    def check_access(self, key: ConsumerKey, server: McpServer, message: rpc.Message) -> None:
        """Refuse a tools/call the key may not make; to the key such a tool does not exist."""
        if message.get("method") == "tools/call":
            name = rpc.params_of(message).get("name")
            if not isinstance(name, str) or not access.tool_allowed(key, server.id, name):
                raise rpc.RpcError(rpc.INVALID_PARAMS, f"unknown tool {name!r}")

    def filter_result(self, key: ConsumerKey, server: McpServer, method: str, result: Any) -> Any:
        if method == "tools/list" and isinstance(result, dict) and isinstance(result.get("tools"), list):
            tools = [t for t in result["tools"]
                     if isinstance(t, dict) and access.tool_allowed(key, server.id, str(t.get("name")))]
            return {**result, "tools": tools}
        return result

    async def admit(self, key: ConsumerKey, server: McpServer, message: rpc.Message) -> Reservation | None:
        """Tool calls count against the key's requests per minute."""
        if message.get("method") != "tools/call":
            return None
        request = AdmitRequest(key=key, model=f"mcp:{server.id}", provider_id=f"mcp:{server.id}",
                               provider_limits=RateLimits(), estimated_tokens=0)
        try:
            return await self.host.quota.admit(request)
        except QuotaRejected as exc:
            raise rpc.RpcError(rpc.RATE_LIMITED, exc.message, {"retryAfter": exc.retry_after, "reason": exc.code},
                               status=429, headers=exc.headers) from None

    async def settle(self, reservation: Reservation | None) -> None:
        if reservation is not None:
            await self.host.quota.settle(reservation, 0)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
