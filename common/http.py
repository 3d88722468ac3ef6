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

import aiohttp

from lockgate.common.resolver import LoopbackNamesResolver

KEEPALIVE_SECONDS = 60.0


def client_session(*, timeout: aiohttp.ClientTimeout | None = None, tls: _ssl.SSLContext | bool = True,
                   limit: int = 0) -> aiohttp.ClientSession:
    """A pooled session; `timeout` is the default of its requests (a request may pass its own)."""
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=KEEPALIVE_SECONDS, ttl_dns_cache=60,
                                     resolver=LoopbackNamesResolver(), ssl=tls)
    if timeout is None:
        return aiohttp.ClientSession(connector=connector)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)
