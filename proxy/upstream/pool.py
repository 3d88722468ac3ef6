"""Keep-alive connections to upstreams, pooled per origin (scheme, host, port).

Checkout takes the most recently used idle connection (LIFO keeps a few
connections warm and lets the rest age out), after dropping those idle past
the keep-alive time; a connection the upstream closed has already left the
pool. No timer runs for a pooled connection. New connections are bounded by
the provider's connect timeout; https uses the system's trust store with the
host's name for SNI and verification.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping

from lockgate.proxy.upstream.connection import Connection, OriginConnections, Response
from lockgate.proxy.upstream.errors import ConnectFailed, ConnectTimeout, TLSFailed, UpstreamError
from lockgate.proxy.upstream.request import request_head, split_url
from lockgate.proxy.upstream.resolve import Resolver

KEEPALIVE = 60.0  # seconds an idle connection is reused; older ones are closed at the next checkout


class UpstreamPool:
    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, keepalive: float = KEEPALIVE,
                 resolver: Resolver | None = None) -> None:
        self.keepalive = keepalive
        self._ssl = ssl_context
        self._resolver = resolver or Resolver()
        self._origins: dict[str, OriginConnections] = {}

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, connect_timeout: float) -> Response:
        """POSTs `body` to `url` with `headers`; the response once its headers are in.

        Every failure to connect, send or read raises an UpstreamError (a
        ConnectionError). A reused connection that fails before any byte of the
        answer (the upstream closed it while it was idle) is retried once on a
        new connection. The caller reads the response to its end or closes it.
        """
        target = split_url(url)
        head = request_head(target, headers, len(body))
        slot = self._origins.get(target.key)
        if slot is None:
            slot = self._origins[target.key] = OriginConnections(target.origin)
        conn = self._checkout(slot)
        if conn is not None:
            try:
                return await conn.request(head, body)
            except UpstreamError:
                if conn.answered:
                    raise
        conn = await self._connect(slot, connect_timeout)
        return await conn.request(head, body)

    def idle_connections(self, url: str) -> int:
        """How many idle connections to the origin of `url` are pooled."""
        slot = self._origins.get(split_url(url).key)
        return len(slot.idle) if slot is not None else 0

    async def close(self) -> None:
        """Closes every connection, idle or busy."""
        origins, self._origins = self._origins, {}
        for slot in origins.values():
            for conn in list(slot.live):
                conn.abort()

    def _checkout(self, slot: OriginConnections) -> Connection | None:
        idle = slot.idle
        if not idle:
            return None
        expired = asyncio.get_running_loop().time() - self.keepalive
        while idle and idle[0].idle_since < expired:  # the oldest are at the bottom
            idle[0].abort()  # leaves the list
        while idle:
            conn = idle.pop()
            conn.pooled = False
            if not conn.closed:
                return conn
        return None

    async def _connect(self, slot: OriginConnections, timeout: float) -> Connection:
        origin = slot.origin
        loop = asyncio.get_running_loop()
        context = self._ssl_context() if origin.tls else None
        try:
            async with asyncio.timeout(timeout):
                failure: OSError | None = None
                for address in await self._resolver.resolve(origin.host, origin.port):
                    try:
                        _, conn = await loop.create_connection(lambda: Connection(slot, loop), address, origin.port,
                                                               ssl=context,
                                                               server_hostname=origin.host if context else None)
                        return conn
                    except ssl.SSLError as exc:
                        raise TLSFailed(f"TLS with the upstream {origin} failed: "
                                        f"{exc.reason or type(exc).__name__}") from None
                    except OSError as exc:
                        failure = exc
                raise ConnectFailed(f"cannot connect to the upstream {origin} ({type(failure).__name__})")
        except TimeoutError:
            raise ConnectTimeout(f"no connection to the upstream {origin} within {timeout:g} s") from None

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:  # loading the trust store takes milliseconds: once, at the first https upstream
            self._ssl = ssl.create_default_context()
        return self._ssl
