"""One keep-alive HTTP/1.1 connection to an upstream, and the response it reads.

The connection is an asyncio Protocol whose bytes go to httptools' llhttp
parser; the parser's callbacks fill the current `Response` and wake its
reader on headers complete, on each body piece and at the end. A complete
response hands its connection back to its origin's idle list when both sides
keep it alive; closing an unfinished one aborts the connection, which the
upstream sees as a cancel at once.
"""

from __future__ import annotations

import asyncio
from typing import cast

import httptools

from lockgate.proxy.upstream.errors import MalformedResponse, ServerDisconnected, UpstreamError
from lockgate.proxy.upstream.request import Origin

HIGH_WATER = 64 * 1024  # unread stream bytes above which the socket is not read until the reader catches up
_JOIN_LIMIT = 64 * 1024  # bodies up to this size leave with their head in one write (one copy, one send)
_NAMES: dict[bytes, str] = {}  # header names as received -> lower case; the few names upstreams send


class OriginConnections:
    """The connections to one origin: the idle ones (most recently used last) and every open one."""

    __slots__ = ("origin", "idle", "live")

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.idle: list[Connection] = []
        self.live: set[Connection] = set()


class Response:
    """An upstream response: status and headers (lower-case names) at once, the body as it arrives."""

    __slots__ = ("status", "headers", "complete", "error", "until_close", "_chunks", "_size", "_whole", "_waiter",
                 "_conn", "_loop")

    def __init__(self, conn: Connection, loop: asyncio.AbstractEventLoop) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.complete = False  # the whole body has arrived, or the exchange failed (`error`)
        self.error: UpstreamError | None = None
        self.until_close = False  # no length and not chunked: the body ends when the connection does
        self._chunks: list[bytes] = []
        self._size = 0
        self._whole = False  # read() wants the whole body: no flow control
        self._waiter: asyncio.Future[None] | None = None
        self._conn: Connection | None = conn  # while the body is still arriving
        self._loop = loop

    @property
    def buffered(self) -> int:
        """Body bytes received and not read yet."""
        return self._size

    async def read(self) -> bytes:
        """The whole body (what is left of it). Raises the exchange's failure."""
        self._whole = True
        if self._conn is not None:
            self._conn.resume()
        while not self.complete:
            await self._wait()
        if self.error is not None:
            raise self.error
        return self._take()

    async def readany(self) -> bytes:
        """The body bytes received since the last read, waiting for some; b"" at the end."""
        while not self._chunks:
            if self.complete:
                if self.error is not None:
                    raise self.error
                return b""
            await self._wait()
        data = self._take()
        if self._conn is not None:
            self._conn.resume()
        return data

    def close(self) -> None:
        """Done with this response. An unfinished one aborts its connection; a complete one is already pooled."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()

    def _take(self) -> bytes:
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._size = 0
        return data

    async def _wait(self) -> None:
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _finish(self) -> None:
        self.complete = True
        self._conn = None
        self._wake()

    def _fail(self, error: UpstreamError) -> None:
        if not self.complete:
            self.error = error
            self._finish()


class Connection(asyncio.Protocol):
    def __init__(self, slot: OriginConnections, loop: asyncio.AbstractEventLoop) -> None:
        self.slot = slot
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.response: Response | None = None  # the request in flight, until its response is complete
        self.closed = False
        self.pooled = False  # in slot.idle
        self.paused = False  # reading paused for flow control
        self.answered = False  # a byte of the current request's answer arrived
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._headers: dict[str, str] = {}
        self._interim = False

    # --- the exchange ----------------------------------------------------

    async def request(self, head: bytes, body: bytes) -> Response:
        """Sends a request; returns its response once the headers are in. Raises UpstreamError."""
        transport = self.transport
        assert transport is not None and self.response is None
        response = self.response = Response(self, self.loop)
        self.answered = False
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

    # --- asyncio.Protocol ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.slot.live.add(self)

    def data_received(self, data: bytes) -> None:
        if self.response is None:  # nothing was asked: an idle connection must stay silent
            self.abort()
            return
        self.answered = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            response, self.response = self.response, None
            if response is not None:
                response._fail(MalformedResponse(f"the upstream {self.slot.origin} sent a malformed response: "
                                                 f"{type(exc).__name__}"))
            self.abort()

    def eof_received(self) -> bool:
        self.closed = True  # not to be checked out again
        return False  # the transport closes; connection_lost settles the response

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._unpool()
        self.slot.live.discard(self)
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

    def on_message_begin(self) -> None:
        if self.response is None:
            raise MalformedResponse("bytes after the end of the response")

    def on_header(self, name: bytes, value: bytes) -> None:
        key = _NAMES.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
            if len(_NAMES) < 512:
                _NAMES[name] = key
        text = value.decode("latin-1")
        headers = self._headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
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
        response = self.response
        assert response is not None
        response._chunks.append(body)
        response._size += len(body)
        response._wake()
        if response._size > HIGH_WATER and not response._whole and not self.paused:
            self.paused = True  # a slow reader: let the upstream wait instead of buffering its whole answer
            assert self.transport is not None
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        response, self.response = self.response, None
        assert response is not None and self.transport is not None
        self.resume()
        response._finish()
        if self._parser.should_keep_alive() and not self.closed:
            self.pooled = True
            self.idle_since = self.loop.time()
            self.slot.idle.append(self)
        else:
            self.closed = True
            self.transport.close()
