"""Who may reach what: per-key server and tool access, Host/Origin checks."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from urllib.parse import urlsplit

from lockgate.api.ir import ConsumerKey, GatewayConfig, McpServer

LOOPBACK_HOSTS: frozenset[str] = frozenset({"localhost", "127.0.0.1", "::1"})


def may_use_server(key: ConsumerKey, server: McpServer) -> bool:
    return server.id in key.mcp_servers


def tool_allowed(key: ConsumerKey, server_id: str, tool: str) -> bool:
    """A key with no tool list for a server may call all of its tools."""
    globs = key.mcp_tools.get(server_id)
    if globs is None:
        return True
    return any(fnmatch.fnmatchcase(tool, glob) for glob in globs)


def allowed_hosts(server: McpServer, config: GatewayConfig, extra: Iterable[str] = ()) -> frozenset[str]:
    """Host names a request may name in Host or Origin (DNS-rebinding protection)."""
    if server.hosts:
        return frozenset(h.lower() for h in server.hosts) | LOOPBACK_HOSTS
    route_hosts = {h.lower() for route in config.routes for h in route.hosts if "*" not in h}
    return frozenset(route_hosts | {h.lower() for h in extra}) | LOOPBACK_HOSTS


def host_name(value: str) -> str:
    """The name part of a Host header value ("[::1]:80" -> "::1")."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def origin_allowed(host: str | None, origin: str | None, allowed: frozenset[str]) -> bool:
    if host is not None and host_name(host) not in allowed:
        return False
    if origin is not None:
        name = urlsplit(origin).hostname
        if name is None or name.lower() not in allowed:
            return False
    return True
