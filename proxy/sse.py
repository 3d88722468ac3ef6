"""Server-sent events: the one parser for every stream the proxy reads (LLM upstreams, MCP
upstreams) and the encoder for the events it writes.

`SSESplitter` cuts a byte stream into raw events (CR, LF and CRLF all end
lines, even when a CRLF is split across reads); `event_data` and
`event_name` read the fields the LLM stream translators need without
decoding the rest; `parse_event` and `parse` give whole `Event`s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


class SSESplitter:
    """Splits a byte stream into SSE events (without their blank-line terminator)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._cr = False  # the last read ended in CR: the next may start with its LF

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._cr:
            chunk, self._cr = b"\r" + chunk, False
        if b"\r" in chunk:
            if chunk.endswith(b"\r"):
                chunk, self._cr = chunk[:-1], True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\n\n" not in buffer:
            self._buffer = buffer
            return []
        events = buffer.split(b"\n\n")
        self._buffer = events.pop()
        return [e for e in events if e]

    @property
    def pending(self) -> bool:
        return bool(self._buffer) or self._cr

    def rest(self) -> bytes:
        rest, self._buffer, self._cr = self._buffer.strip(), b"", False
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
