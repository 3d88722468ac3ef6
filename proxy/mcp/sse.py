"""Server-sent events: encoding and an incremental parser for upstream streams."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass
class Event:
    data: str = ""
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    comment: str | None = None  # a ": ..." line alone (keep-alives)

    def encode(self) -> bytes:
        if self.comment is not None:
            return f": {self.comment}\n\n".encode()
        lines: list[str] = []
        if self.id is not None:
            lines.append(f"id: {self.id}")
        if self.event is not None:
            lines.append(f"event: {self.event}")
        if self.retry is not None:
            lines.append(f"retry: {self.retry}")
        for line in self.data.split("\n"):
            lines.append(f"data: {line}")
        return ("\n".join(lines) + "\n\n").encode()


KEEPALIVE = b": keep-alive\n\n"
KEEPALIVE_SECONDS = 15.0


async def with_keepalives(events: AsyncIterator[Event], every: float = KEEPALIVE_SECONDS) -> AsyncIterator[Event]:
    """The events, with a comment whenever `every` seconds pass without one (proxies drop idle streams)."""
    pending: asyncio.Future[Event] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending}, timeout=every)
            if not done:
                yield Event(comment="keep-alive")
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield event
    finally:
        # Close the source too (releasing its upstream response) when the client goes away mid-stream.
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        closer = getattr(events, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()
HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def parse(chunks: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    """Events from a byte stream; comments are dropped, CRLF and LF both end lines."""
    buffer = b""
    event = Event()
    data: list[str] = []
    seen = False
    async for chunk in chunks:
        buffer += chunk
        while True:
            cut = _line_end(buffer)
            if cut is None:
                break
            line_bytes, buffer = buffer[: cut[0]], buffer[cut[1]:]
            line = line_bytes.decode("utf-8", "replace")
            if line == "":
                if seen:
                    event.data = "\n".join(data)
                    yield event
                event, data, seen = Event(), [], False
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            seen = True
            if field == "data":
                data.append(value)
            elif field == "event":
                event.event = value
            elif field == "id":
                event.id = value
            elif field == "retry" and value.isdigit():
                event.retry = int(value)
    if seen:
        event.data = "\n".join(data)
        yield event


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    """(end of the first line, start of the next), or None while incomplete."""
    lf, cr = buffer.find(b"\n"), buffer.find(b"\r")
    if cr == -1 or (lf != -1 and lf < cr):
        return None if lf == -1 else (lf, lf + 1)
    if cr + 1 >= len(buffer):
        return None  # wait: may be CRLF
    return (cr, cr + 2) if buffer[cr + 1:cr + 2] == b"\n" else (cr, cr + 1)
