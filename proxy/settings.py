"""Everything the proxy reads at start-up, as one typed tree.

The command line (`lockgate run`, `lockgate proxy`) fills it from flags and
environment variables once (`from_environment`); nothing below reads the
environment itself, so a test or an embedding process sets any of it directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lockgate.proxy.estimate import DEFAULT_OUTPUT_RESERVATION
from lockgate.proxy.upstream import UpstreamSettings

DEFAULT_DRAIN_SECONDS = 10.0
SESSION_KEY_ENV = "LOCKGATE_SESSION_KEY"
MCP_ALLOWED_HOSTS_ENV = "LOCKGATE_MCP_ALLOWED_HOSTS"


@dataclass(frozen=True)
class McpSettings:
    # Signs MCP session ids; replicas must share it. None: a random key per process (one replica only).
    session_secret: str | None = None
    allowed_hosts: tuple[str, ...] = ()  # Host/Origin values accepted besides each server's own
    max_body_bytes: int | None = None  # None: the proxy's max_body_bytes


@dataclass
class ProxySettings:
    host: str = "127.0.0.1"
    port: int = 8080
    admin_port: int = 9090
    gateway_name: str = "lockgate"
    quota_store: str = "memory"  # or "redis://..."
    quota_fail_mode: str = "open"  # open | closed
    quota_store_ca: str | None = None  # CA bundle of a TLS Redis (rediss://)
    replicas_hint: int = 1
    slot_lease: float = 10.0  # seconds a replica's endpoint slot outlives it in Redis (shared maxConcurrency)
    drain_seconds: float = DEFAULT_DRAIN_SECONDS
    state_dir: str | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    access_log: str | None = "-"  # JSON lines: "-" stdout, a file path, or None for none
    default_output_reservation: int = DEFAULT_OUTPUT_RESERVATION  # output tokens reserved without max_tokens
    mcp: McpSettings = field(default_factory=McpSettings)
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)  # caps, pooling, proxies of upstream calls


def mcp_from_environment(environ: Mapping[str, str]) -> McpSettings:
    """`$LOCKGATE_SESSION_KEY` and `$LOCKGATE_MCP_ALLOWED_HOSTS` (comma-separated)."""
    hosts = tuple(h.strip() for h in environ.get(MCP_ALLOWED_HOSTS_ENV, "").split(",") if h.strip())
    return McpSettings(session_secret=environ.get(SESSION_KEY_ENV) or None, allowed_hosts=hosts)
