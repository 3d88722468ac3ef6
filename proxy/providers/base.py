"""What every provider adapter provides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

from lockgate.api.ir import Provider, ProviderModel
from lockgate.proxy.sse import SSESplitter, event_data

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


class UpstreamStreamError(Exception):
    """A provider reported an error inside its stream; `body` is the client's error JSON.
    Any adapter's stream translator may raise it; the pipeline treats it like a failed upstream."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(str(body))
        self.body = body


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
        """The upstream request for a body the request filters made ready for this provider (model name and
        `compat` applied), and whether the client asked for stream usage itself."""
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


def chat_deltas(block: bytes) -> list[str]:
    """The text deltas in whole OpenAI chat completion chunk events."""
    out = []
    for event in block.split(b"\n\n"):
        data = event_data(event)
        if data is None or not data.startswith(b"{"):
            continue
        for choice in orjson.loads(data).get("choices") or ():
            text = (choice.get("delta") or {}).get("content")
            if text:
                out.append(text)
    return out


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
