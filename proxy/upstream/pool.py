"""Keep-alive connections to upstreams, pooled per origin (scheme, host, port, and how it is reached).

Checkout takes the most recently used idle connection (LIFO keeps a few
connections warm and lets the rest age out), skipping those past their
expiry (the keep-alive time, the upstream's own `Keep-Alive: timeout`, the
maximum connection age) and those whose socket is readable: an upstream
that closed an idle connection is found out before the request is written,
so a request is never sent twice. No timer runs for a pooled connection; a
sweep every few seconds (on the next request) closes expired idle
connections everywhere and forgets origins with none left. An origin at its
connection cap makes further requests wait for one of its connections.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping

from lockgate.proxy.upstream.connection import Connection, OriginConnections
from lockgate.proxy.upstream.dial import dial
from lockgate.proxy.upstream.errors import ConnectTimeout, NotSent, ServerDisconnected
from lockgate.proxy.upstream.limits import UpstreamSettings
from lockgate.proxy.upstream.request import request_head, split_url
from lockgate.proxy.upstream.resolve import Resolver
from lockgate.proxy.upstream.response import Response
from lockgate.proxy.upstream.transport import Reach, UpstreamTransport, reach_for

KEEPALIVE = UpstreamSettings().keepalive  # seconds an idle connection is reused


class UpstreamPool:
    def __init__(self, settings: UpstreamSettings | None = None, *, ssl_context: ssl.SSLContext | None = None,
                 resolver: Resolver | None = None) -> None:
        self.settings = settings or UpstreamSettings()
        self._ssl = ssl_context
        self._resolver = resolver or Resolver()
        self._origins: dict[object, OriginConnections] = {}
        self._next_sweep = 0.0

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, connect_timeout: float,
                   transport: UpstreamTransport | None = None) -> Response:
        """POSTs `body` to `url` with `headers`; the response once its headers are in.

        `transport` is the provider's own way to the upstream (proxy, CA
        bundle, client certificate); None: the settings' defaults. Every
        failure to connect, send or read raises an UpstreamError (a
        ConnectionError). A request goes out once: only a connection found
        closed before a byte of it was written is replaced. The caller reads
        the response to its end, drops or closes it.
        """
        target = split_url(url)
        head = request_head(target, headers, len(body))
        key: object = target.key if transport is None else (target.key, transport)
        slot = self._origins.get(key)
        if slot is None:
            reach = reach_for(target.origin, transport, self.settings, self._default_ssl)
            slot = self._origins[key] = OriginConnections(target.origin, self.settings, reach)
        while True:
            conn = self._checkout(slot)
            fresh = conn is None
            if conn is None:
                if slot.full:
                    await self._wait(slot)
                    continue
                conn = await self._connect(slot, connect_timeout)
            try:
                return await conn.request(head, body)
            except NotSent:
                if fresh:
                    raise ServerDisconnected(f"the upstream {slot.origin} closed a new connection at once") from None

    def idle_connections(self, url: str, transport: UpstreamTransport | None = None) -> int:
        """How many idle connections to the origin of `url` are pooled."""
        key = split_url(url).key
        slot = self._origins.get(key if transport is None else (key, transport))
        return len(slot.idle) if slot is not None else 0

    @property
    def origins(self) -> int:
        """How many origins the pool holds connections or waiting requests for."""
        return len(self._origins)

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
        now = idle[-1].loop.time()  # the connection's loop: no get_running_loop() (a getpid() call on 3.11)
        if now >= self._next_sweep:
            self._sweep(now)
        while idle:
            conn = idle.pop()
            conn.pooled = False
            if conn.closed:
                continue
            if conn.expires <= now or conn.readable():
                conn.abort()
                continue
            return conn
        return None

    def _sweep(self, now: float) -> None:
        """Closes idle connections past their expiry, everywhere; forgets origins with nothing left."""
        self._next_sweep = now + self.settings.sweep_interval
        for key, slot in list(self._origins.items()):
            for conn in [c for c in slot.idle if c.expires <= now]:
                conn.abort()
            if not slot.live and not slot.connecting and not slot.waiters:
                del self._origins[key]

    async def _wait(self, slot: OriginConnections) -> None:
        waiter = asyncio.get_running_loop().create_future()
        slot.waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                slot.wake()  # woken and gone: the next one in line takes the turn
            raise

    async def _connect(self, slot: OriginConnections, timeout: float) -> Connection:
        loop = asyncio.get_running_loop()
        reach = slot.extra
        assert isinstance(reach, Reach)
        slot.connecting += 1  # before the sweep, which forgets origins with no connection
        now = loop.time()
        if now >= self._next_sweep:
            self._sweep(now)
        try:
            async with asyncio.timeout(timeout):
                return await dial(slot, reach, self._resolver, lambda: Connection(slot, loop))
        except TimeoutError:
            raise ConnectTimeout(f"no connection to the upstream {slot.origin} within {timeout:g} s") from None
        finally:
            slot.connecting -= 1
            if slot.waiters and not slot.full:
                slot.wake()

    def _default_ssl(self) -> ssl.SSLContext:
        if self._ssl is None:  # loading the trust store takes milliseconds: once, at the first https upstream
            self._ssl = ssl.create_default_context()
        return self._ssl
