"""What every provider adapter provides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from lockgate.api.ir import Provider, ProviderModel
from lockgate.proxy.upstream.errors import ResponseTooLarge

# chat: /v1/chat/completions, completions, embeddings, responses: OpenAI; messages: Anthropic's /v1/messages.
Operation = Literal["chat", "completions", "embeddings", "responses", "messages"]

OPENAI_PATHS: dict[str, str] = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
    "responses": "/responses",
}


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    reported: bool = False  # the upstream reported it (else it was counted)


@dataclass(slots=True)  # made per request: a frozen dataclass costs 5x to build
class UpstreamCall:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)  # made per request: a frozen dataclass costs 5x to build
class Answer:
    """A whole (non-streamed) answer in the client's format."""

    body: bytes
    usage: Usage


class StreamTranslator(Protocol):
    """Turns upstream SSE bytes into client SSE bytes (whole events only)."""

    usage: Usage

    def feed_bytes(self, chunk: bytes) -> bytes:
        """What to send the client for this upstream chunk (may be empty)."""
        ...

    def end(self) -> bytes:
        """What to send once the upstream stream has ended."""
        ...


class Adapter(Protocol):
    def supports(self, op: Operation) -> bool: ...

    def build(self, op: Operation, body: dict[str, Any], provider: Provider, model: ProviderModel, base_url: str,
              credential: str | None, request_id: str) -> tuple[UpstreamCall, bool]:
        """The upstream request, and whether the client asked for stream usage itself."""
        ...

    def answer(self, op: Operation, data: bytes, provider: Provider, requested_model: str) -> Answer:
        """A whole upstream answer (2xx) in the client's format."""
        ...

    def error_body(self, op: Operation, data: bytes) -> bytes:
        """An upstream error body (4xx) in the client's format."""
        ...

    def stream(self, op: Operation, provider: Provider, requested_model: str, client_wants_usage: bool) -> StreamTranslator:
        ...


def sse(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


DONE = b"data: [DONE]\n\n"


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


MAX_EVENT_BYTES = 8 * 1024 * 1024  # one upstream event past this ends the stream (ResponseTooLarge)


class SSESplitter:
    """Splits a byte stream into SSE events (without their blank-line terminator).

    An unfinished event waits in a growing buffer that is searched only
    where new bytes came (never again from its start), up to `limit` bytes.
    """

    def __init__(self, limit: int = MAX_EVENT_BYTES) -> None:
        self._buffer = bytearray()
        self._searched = 0  # the buffer holds no blank line before this offset
        self._cr = False  # the last chunk ended with CR: a LF opening the next one belongs to it
        self.limit = limit

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._cr = chunk.endswith(b"\r")
        if b"\r" in chunk:
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
        return bool(self._buffer)

    def rest(self) -> bytes:
        rest = bytes(self._buffer).strip()
        self._buffer.clear()
        self._searched = 0
        return rest


class EventStream:
    """Base of stream translators: splits upstream bytes into events and translates each one."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.sse = SSESplitter()

    def feed(self, event: bytes) -> list[bytes]:
        raise NotImplementedError

    def finish(self) -> list[bytes]:
        return []

    def whole_events(self, chunk: bytes) -> bool:
        """True when the chunk holds only whole events and nothing is held back (so it may pass untouched)."""
        return not self.sse.pending and chunk.endswith(b"\n\n") and b"\r" not in chunk

    def feed_bytes(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        for event in self.sse.feed(chunk):
            out.extend(self.feed(event))
        return b"".join(out)

    def end(self) -> bytes:
        rest = self.sse.rest()
        out = self.feed(rest) if rest else []
        return b"".join([*out, *self.finish()])
