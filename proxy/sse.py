"""Server-sent events: the one parser for every stream the proxy reads (LLM upstreams, MCP
upstreams) and the encoder for the events it writes.

`SSESplitter` cuts a byte stream into raw events (CR, LF and CRLF all end
lines, even when a CRLF is split across reads; one event is capped); `event_data` and
`event_name` read the fields the LLM stream translators need without
decoding the rest; `parse_event` and `parse` give whole `Event`s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from lockgate.proxy.upstream.errors import ResponseTooLarge


MAX_EVENT_BYTES = 8 * 1024 * 1024  # one upstream event past this ends the stream (ResponseTooLarge)


class SSESplitter:
    """Splits a byte stream into SSE events (without their blank-line terminator).

    An unfinished event waits in a growing buffer that is searched only
    where new bytes came (never again from its start), up to `limit` bytes.
    """

    def __init__(self, limit: int = MAX_EVENT_BYTES) -> None:
        self._buffer = bytearray()
        self._searched = 0  # the buffer holds no blank line before this offset
        self._cr = False  # the last read ended in CR: held back, the next may start with its LF
        self.limit = limit

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._cr:
            chunk, self._cr = b"\r" + chunk, False
        if b"\r" in chunk:
            if chunk.endswith(b"\r"):
                chunk, self._cr = chunk[:-1], True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = self._buffer
        if not buffer:  # the common case: whole events in one chunk, no copy
            if b"\n\n" not in chunk:
                buffer += chunk
                self._searched = max(len(buffer) - 1, 0)
                self._check()
                return []
            events = chunk.split(b"\n\n")
            buffer += events.pop()
            self._searched = max(len(buffer) - 1, 0)
            self._check()
            return [e for e in events if e]
        start = self._searched
        buffer += chunk
        end = buffer.find(b"\n\n", start)
        if end < 0:
            self._searched = len(buffer) - 1
            self._check()
            return []
        last = buffer.rfind(b"\n\n")
        events = bytes(buffer[:last]).split(b"\n\n")
        del buffer[:last + 2]
        self._searched = max(len(buffer) - 1, 0)
        self._check()
        return [e for e in events if e]

    def _check(self) -> None:
        if len(self._buffer) > self.limit:
            self._buffer.clear()
            raise ResponseTooLarge(f"an upstream stream event passed {self.limit} bytes")

    @property
    def pending(self) -> bool:
        return bool(self._buffer) or self._cr

    def rest(self) -> bytes:
        rest = bytes(self._buffer).strip()
        self._buffer.clear()
        self._searched, self._cr = 0, False
        return rest


def event_data(event: bytes) -> bytes | None:
    """The data of one SSE event (lines joined), or None when it carries none."""
    if event.startswith(b"data:") and b"\n" not in event:
        return event[5:].lstrip(b" ")
    parts = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(parts) if parts else None


def event_name(event: bytes) -> bytes | None:
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip()
    return None


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


def parse_event(raw: bytes) -> Event | None:
    """One raw event's fields; None for comments alone."""
    event = Event()
    data: list[str] = []
    seen = False
    for line in raw.decode("utf-8", "replace").split("\n"):
        if not line or line.startswith(":"):
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
    if not seen:
        return None
    event.data = "\n".join(data)
    return event


async def parse(chunks: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    """Events from a byte stream; comments are dropped."""
    splitter = SSESplitter()
    async for chunk in chunks:
        for raw in splitter.feed(chunk):
            event = parse_event(raw)
            if event is not None:
                yield event
    rest = splitter.rest()
    event = parse_event(rest) if rest else None
    if event is not None:
        yield event
