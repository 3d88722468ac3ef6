"""An upstream response: status and headers at once, the body as it arrives.

The connection's parser callbacks fill it; the reader waits on one future.
`read()` takes the whole body, up to the settings' cap; `readany()` takes
what has arrived (the connection pauses the socket while too much waits);
`drop()` gets rid of a body nobody reads without reading much of it.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from lockgate.proxy.upstream.errors import ResponseTooLarge, UpstreamError


class _Origins(Protocol):
    @property
    def origin(self) -> object: ...


class Connection(Protocol):
    """What a response needs of the connection it arrives on (`connection.Connection`)."""

    @property
    def slot(self) -> _Origins: ...

    def resume(self) -> None: ...

    def abort(self) -> None: ...


class Response:
    """An upstream response: status and headers (lower-case names) at once, the body as it arrives."""

    __slots__ = ("status", "headers", "complete", "error", "until_close", "_chunks", "_size", "_whole", "_limit",
                 "_waiter", "_conn", "_loop")

    def __init__(self, conn: Connection, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.complete = False  # the whole body has arrived, or the exchange failed (`error`)
        self.error: UpstreamError | None = None
        self.until_close = False  # no length and not chunked: the body ends when the connection does
        self._chunks: list[bytes] = []
        self._size = 0
        self._whole = False  # read() wants the whole body: no flow control, the size cap instead
        self._limit = limit  # the most read() takes
        self._waiter: asyncio.Future[None] | None = None
        self._conn: Connection | None = conn  # while the body is still arriving
        self._loop = loop

    @property
    def buffered(self) -> int:
        """Body bytes received and not read yet."""
        return self._size

    async def read(self) -> bytes:
        """The whole body (what is left of it). Raises the exchange's failure, ResponseTooLarge past the cap."""
        conn = self._conn
        if conn is not None:
            if self._declared() > self._limit or self._size > self._limit:
                self.refuse()  # before a byte more of it is buffered
            else:
                self._whole = True
                conn.resume()
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

    async def drop(self, limit: int) -> None:
        """Done with a body nobody wants (an error being retried): a remainder of at most `limit` bytes is
        read so the connection can serve again; a longer or unknown one closes the connection instead."""
        if self.complete:
            return
        if self._declared() > limit:
            self.close()
            return
        received = 0
        try:
            while chunk := await self.readany():
                received += len(chunk)
                if received > limit:
                    break
        except UpstreamError:
            return
        self.close()

    def close(self) -> None:
        """Done with this response. An unfinished one aborts its connection; a complete one is already pooled."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()

    def refuse(self) -> None:
        """Fails a body past the cap: what came of it is dropped, the connection aborted."""
        conn = self._conn
        origin = conn.slot.origin if conn is not None else "upstream"
        self._chunks.clear()
        self._size = 0
        self._fail(ResponseTooLarge(f"the upstream {origin} sent a body over the limit of {self._limit} bytes"))
        if conn is not None:
            conn.abort()

    def _declared(self) -> int:
        """The Content-Length of the body (0 when the head names none)."""
        length = self.headers.get("content-length")
        return int(length) if length is not None and length.isdigit() else 0

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
