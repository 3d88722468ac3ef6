"""Who may reach what: per-key server and tool access, Host/Origin checks."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from urllib.parse import urlsplit

from lockgate.api.ir import ConsumerKey, GatewayConfig, McpServer

LOOPBACK_HOSTS: frozenset[str] = frozenset({"localhost", "127.0.0.1", "::1"})
CLUSTER_SUFFIXES: frozenset[str] = frozenset({"*.svc", "*.svc.cluster.local"})


def may_use_server(key: ConsumerKey, server: McpServer) -> bool:
    return server.id in key.mcp_servers


def tool_allowed(key: ConsumerKey, server_id: str, tool: str) -> bool:
    """A key with no tool list for a server may call all of its tools."""
    globs = key.mcp_tools.get(server_id)
    if globs is None:
        return True
    return any(fnmatch.fnmatchcase(tool, glob) for glob in globs)


def allowed_hosts(server: McpServer, config: GatewayConfig, extra: Iterable[str] = ()) -> frozenset[str]:
    """Host names (or "*.suffix" patterns) a request may name in Host or Origin (DNS-rebinding protection).

    The server's own hosts when it lists them, else the Routes' hosts; always loopback and the
    cluster's own service names, which no outside DNS can point a browser at.
    """
    names = server.hosts if server.hosts else [h for route in config.routes for h in route.hosts if h != "*"]
    return frozenset(h.lower() for h in [*names, *extra]) | LOOPBACK_HOSTS | CLUSTER_SUFFIXES


def host_name(value: str) -> str:
    """The name part of a Host header value ("[::1]:80" -> "::1")."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def name_allowed(name: str, allowed: frozenset[str]) -> bool:
    name = name.lower().rstrip(".")
    if name in allowed:
        return True
    return any(pattern.startswith("*.") and name.endswith(pattern[1:]) for pattern in allowed)


def origin_allowed(host: str | None, origin: str | None, allowed: frozenset[str]) -> bool:
    if host is not None and not name_allowed(host_name(host), allowed):
        return False
    if origin is not None:
        name = urlsplit(origin).hostname
        if name is None or not name_allowed(name, allowed):
            return False
    return True
