"""One keep-alive HTTP/1.1 connection to an upstream, and the connections of one origin.

The connection is an asyncio Protocol whose bytes go to httptools' llhttp
parser; the parser's callbacks fill the current `Response` and wake its
reader on headers complete, on each body piece and at the end. Each
response starts from a clean header state (interim heads and trailers are
read and counted against the caps, never kept). A complete response hands
its connection back to its origin's idle list when both sides keep it
alive and the whole request was written; closing an unfinished one aborts
the connection, which the upstream sees as a cancel at once.
"""

from __future__ import annotations

import asyncio
import collections
import select
from typing import cast

import httptools

from lockgate.proxy.upstream.errors import MalformedResponse, NotSent, ResponseTooLarge, ServerDisconnected, \
    UpstreamError
from lockgate.proxy.upstream.limits import UpstreamSettings
from lockgate.proxy.upstream.request import Origin
from lockgate.proxy.upstream.response import Response

HIGH_WATER = 64 * 1024  # unread stream bytes above which the socket is not read until the reader catches up
_JOIN_LIMIT = 64 * 1024  # bodies up to this size leave with their head in one write (one copy, one send)
_NAMES: dict[bytes, str] = {}  # header names as received -> lower case; the few names upstreams send


class OriginConnections:
    """The connections to one origin: the idle ones (most recently used last), every open one, and the
    requests waiting for one while the origin is at its connection cap."""

    __slots__ = ("origin", "settings", "idle", "live", "connecting", "waiters", "extra")

    def __init__(self, origin: Origin, settings: UpstreamSettings, extra: object = None) -> None:
        self.origin = origin
        self.settings = settings
        self.idle: list[Connection] = []
        self.live: set[Connection] = set()
        self.connecting = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.extra = extra  # how to reach it (proxy, TLS), as the pool decided

    @property
    def full(self) -> bool:
        return len(self.live) + self.connecting >= self.settings.max_connections_per_origin

    def wake(self) -> None:
        """A connection came back or went away: the first waiting request may take or open one."""
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class _Stop(Exception):
    """Raised in a parser callback to stop parsing; the connection's `_failure` says why."""


def _keepalive_timeout(value: str) -> float | None:
    """The `timeout` of a Keep-Alive header ("timeout=5, max=100"), in seconds."""
    for part in value.split(","):
        name, _, number = part.partition("=")
        if name.strip().lower() == "timeout":
            try:
                return float(number.strip())
            except ValueError:
                return None
    return None


class Connection(asyncio.Protocol):
    def __init__(self, slot: OriginConnections, loop: asyncio.AbstractEventLoop) -> None:
        settings = slot.settings
        self.slot = slot
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.response: Response | None = None  # the request in flight, until its response is complete
        self.closed = False
        self.pooled = False  # in slot.idle
        self.paused = False  # reading paused for flow control
        self.answered = False  # a byte of the current request's answer arrived
        self.expires = 0.0  # while pooled: when it is too old to reuse
        self.retires = 0.0  # when the connection is too old to reuse at all
        self._poll: select.poll | None = None  # this socket's readability, for the idle check (no fd limit)
        self._parser = httptools.HttpResponseParser(self)
        self._headers: dict[str, str] = {}
        self._interim = False
        self._in_head = False  # between a head's first line and its end: fields are headers, else trailers
        self._header_bytes = 0  # field bytes of the current answer: interim heads, head and trailers
        self._header_count = 0
        self._unparsed = 0  # bytes fed since the parser last made progress (a field, a body piece)
        self._failure: UpstreamError | None = None
        self._max_header_bytes = settings.max_header_bytes
        self._max_header_count = settings.max_header_count
        self._max_body = settings.max_body_bytes

    # --- the exchange ----------------------------------------------------

    async def request(self, head: bytes, body: bytes) -> Response:
        """Sends a request; returns its response once the headers are in. Raises UpstreamError (NotSent
        when the connection had closed before a byte of the request went out)."""
        transport = self.transport
        assert transport is not None and self.response is None
        if self.closed or transport.is_closing():
            self.abort()
            raise NotSent(f"the upstream {self.slot.origin} closed the connection")
        response = self.response = Response(self, self.loop, self._max_body)
        self.answered = False
        self._header_bytes = self._header_count = 0
        try:
            if len(body) <= _JOIN_LIMIT:
                transport.write(head + body)
            else:  # no copy of a large body
                transport.write(head)
                transport.write(body)
        except (RuntimeError, OSError):  # the transport closed under us
            self.abort()
            raise ServerDisconnected(f"the upstream {self.slot.origin} closed the connection") from None
        try:
            while not response.status and response.error is None:
                await response._wait()
        except BaseException:  # cancelled (a timeout): drop the connection so the upstream sees it
            self.abort()
            raise
        if response.error is not None:
            raise response.error
        return response

    def readable(self) -> bool:
        """Whether bytes or an end of stream wait on this idle connection's socket: the upstream closed it
        (or broke the protocol) and the event loop has not told us yet."""
        return self._poll is not None and bool(self._poll.poll(0))

    def abort(self) -> None:
        self.closed = True
        self._unpool()
        if self.transport is not None:
            self.transport.abort()

    def resume(self) -> None:
        if self.paused and not self.closed and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def _unpool(self) -> None:
        if self.pooled:
            self.pooled = False
            self.slot.idle.remove(self)

    def _pool(self, headers: dict[str, str]) -> None:
        now = self.loop.time()
        expires = min(now + self.slot.settings.keepalive, self.retires)
        keep_alive = headers.get("keep-alive")
        if keep_alive is not None:  # the upstream's own idle timeout, with a second's margin
            timeout = _keepalive_timeout(keep_alive)
            if timeout is not None:
                expires = min(expires, now + timeout - 1.0)
        if expires <= now:
            self.closed = True
            assert self.transport is not None
            self.transport.close()
            return
        self.expires = expires
        self.pooled = True
        self.slot.idle.append(self)
        if self.slot.waiters:
            self.slot.wake()

    def _stop(self, error: UpstreamError) -> None:
        self._failure = error
        raise _Stop

    # --- asyncio.Protocol ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.retires = self.loop.time() + self.slot.settings.max_connection_age
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self._poll = select.poll()
            self._poll.register(sock.fileno(), select.POLLIN)
        self.slot.live.add(self)

    def data_received(self, data: bytes) -> None:
        if self.response is None:  # nothing was asked: an idle connection must stay silent
            self.abort()
            return
        self.answered = True
        self._unparsed += len(data)
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            failure, self._failure = self._failure, None
            self._fail(failure or MalformedResponse(f"the upstream {self.slot.origin} sent a malformed response: "
                                                    f"{type(exc).__name__}"))
            return
        if self._unparsed > self._max_header_bytes:  # one header field without end
            self._fail(self._too_large_head())

    def _fail(self, error: UpstreamError) -> None:
        response, self.response = self.response, None
        if response is not None:
            response._fail(error)
        self.abort()

    def eof_received(self) -> bool:
        self.closed = True  # not to be checked out again
        return False  # the transport closes; connection_lost settles the response

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._unpool()
        slot = self.slot
        slot.live.discard(self)
        if slot.waiters:
            slot.wake()
        response, self.response = self.response, None
        if response is None:
            return
        if response.status and response.until_close and exc is None:
            response._finish()  # a body without length ends with the connection
            return
        where = ("before answering" if not self.answered else "in the middle of the response head"
                 if not response.status else "in the middle of the response body")
        reason = f" ({type(exc).__name__})" if exc is not None else ""
        response._fail(ServerDisconnected(f"the upstream {self.slot.origin} closed the connection {where}{reason}"))

    # --- httptools callbacks ---------------------------------------------

    def _too_large_head(self) -> ResponseTooLarge:
        return ResponseTooLarge(f"the upstream {self.slot.origin} sent response headers over the limit of "
                                f"{self._max_header_bytes} bytes or {self._max_header_count} fields")

    def on_message_begin(self) -> None:
        if self.response is None:
            self._stop(MalformedResponse("bytes after the end of the response"))
        self._headers = {}
        self._in_head = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self._unparsed = 0
        self._header_count += 1
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self._max_header_bytes or self._header_count > self._max_header_count:
            self._stop(self._too_large_head())
        if not self._in_head:  # a trailer: read, not kept
            return
        key = _NAMES.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
            if len(_NAMES) < 512:
                _NAMES[name] = key
        text = value.decode("latin-1")
        headers = self._headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        self._unparsed = 0
        self._in_head = False
        status = self._parser.get_status_code()
        headers, self._headers = self._headers, {}
        if status < 200:  # interim (100 Continue, 103 Early Hints): the real answer follows
            self._interim = True
            return
        response = self.response
        assert response is not None
        response.status = status
        response.headers = headers
        response.until_close = ("content-length" not in headers and "transfer-encoding" not in headers
                                and status not in (204, 304))
        response._wake()

    def on_body(self, body: bytes) -> None:
        self._unparsed = 0
        response = self.response
        assert response is not None
        response._chunks.append(body)
        response._size += len(body)
        response._wake()
        if response._size > HIGH_WATER:
            if response._whole:
                if response._size > response._limit:
                    response.refuse()
                    self._stop(response.error or self._too_large_head())
            elif not self.paused:
                self.paused = True  # a slow reader: let the upstream wait instead of buffering its whole answer
                assert self.transport is not None
                self.transport.pause_reading()

    def on_message_complete(self) -> None:
        self._unparsed = 0
        if self._interim:
            self._interim = False
            return
        response, self.response = self.response, None
        transport = self.transport
        assert response is not None and transport is not None
        self.resume()
        response._finish()
        # Pooled only when the whole request went out: an early answer with part of the body unsent
        # would leave the next request's bytes behind the rest of this one.
        if transport.get_write_buffer_size():
            self.abort()  # not close(): that would wait for the rest to go out to an upstream not reading it
        elif self._parser.should_keep_alive() and not self.closed:
            self._pool(response.headers)
        else:
            self.closed = True
            transport.close()
