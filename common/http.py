"""The one place aiohttp client sessions are made.

Every HTTP client of Lockgate except the LLM forward path (which keeps its
own lean pool, `lockgate.proxy.upstream`) takes its session from here: MCP
upstreams and HTTP tools, engine metric scrapes, the endpoint picker, the
operator's probes of proxy replicas and the Kubernetes API client. Each use
says what differs (timeouts, TLS, pool size); what is the same for all is
decided once: names under `.localhost` reach the loopback host (RFC 6761),
connections are kept alive, and the pool is unbounded unless a use bounds it.
"""

from __future__ import annotations

import ssl as _ssl
from collections.abc import Sequence

import aiohttp

from lockgate.common.resolver import LoopbackNamesResolver

KEEPALIVE_SECONDS = 60.0


def client_session(*, timeout: aiohttp.ClientTimeout | None = None, tls: _ssl.SSLContext | bool = True,
                   limit: int = 0, trace_configs: Sequence[aiohttp.TraceConfig] = ()) -> aiohttp.ClientSession:
    """A pooled session; `timeout` is the default of its requests (a request may pass its own);
    `trace_configs`: aiohttp request hooks (the MCP upstreams' tracing)."""
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=KEEPALIVE_SECONDS, ttl_dns_cache=60,
                                     resolver=LoopbackNamesResolver(), ssl=tls)
    hooks = list(trace_configs) or None
    if timeout is None:
        return aiohttp.ClientSession(connector=connector, trace_configs=hooks)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, trace_configs=hooks)
