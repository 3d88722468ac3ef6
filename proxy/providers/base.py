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
    cached_tokens: int = 0  # of input_tokens, those read from the provider's prompt cache


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
              credential: str | None, request_id: str, raw: bytes = b"") -> tuple[UpstreamCall, bool]:
        """The upstream request for a body the request filters made ready for this provider (model name and
        `compat` applied), and whether the client asked for stream usage itself. `raw`: the body's JSON as the
        client sent it when `body` is exactly what it says (else b""): an adapter that would send `body`
        unchanged sends these bytes instead of serialising it again."""
        ...

    def answer(self, op: Operation, data: bytes, provider: Provider, requested_model: str) -> Answer:
        """A whole upstream answer (2xx) in the client's format."""
        ...

    def error_body(self, op: Operation, data: bytes) -> bytes:
        """An upstream error body (4xx) in the client's format."""
        ...

    def stream(self, op: Operation, provider: Provider, requested_model: str, client_wants_usage: bool) -> StreamTranslator:
        ...


class MalformedUpstreamAnswer(UpstreamStreamError):
    """An upstream answer that is not what it claims (JSON that does not parse, a stream that is not SSE):
    an upstream failure (502, failover, outlier ejection), never passed on to the client."""

    def __init__(self, what: str) -> None:
        super().__init__({"error": {"message": f"The upstream's answer is malformed: {what}.", "type": "api_error",
                                    "param": None, "code": "upstream_error"}})


def json_object(data: bytes, what: str) -> dict[str, Any]:
    """`data` as a JSON object, or MalformedUpstreamAnswer."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise MalformedUpstreamAnswer(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedUpstreamAnswer(f"{what} is not a JSON object")
    return value


def openai_error_body(data: bytes, fallback: str = "The upstream refused the request.") -> bytes:
    """An upstream error body as it came when it is OpenAI's error JSON, else a generic one in that format."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict) and isinstance(value.get("error"), dict):
        return data
    message = value.get("message") if isinstance(value, dict) else None  # engines' flat {"object": "error"...}
    return orjson.dumps({"error": {"message": message if isinstance(message, str) else fallback,
                                   "type": "api_error", "param": None, "code": "upstream_error"}})


def sse(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


DONE = b"data: [DONE]\n\n"


def chat_deltas(block: bytes) -> list[str]:
    """The text deltas in whole OpenAI chat completion chunk events (MalformedUpstreamAnswer for one that is not JSON)."""
    out = []
    for event in block.split(b"\n\n"):
        data = event_data(event)
        if data is None or not data.startswith(b"{"):
            continue
        choices = json_object(data, "a stream event").get("choices")
        for choice in choices if isinstance(choices, list) else ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            text = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(text, str) and text:
                out.append(text)
    return out


class EventStream:
    """Base of stream translators: splits upstream bytes into events and translates each one.

    The first event with data must carry a JSON object (or OpenAI's [DONE]): a body that only says
    it is a stream raises MalformedUpstreamAnswer before any byte of it reaches the client.
    """

    def __init__(self) -> None:
        self.usage = Usage()
        self.sse = SSESplitter()
        self.checked = False  # the first event with data was a JSON object

    def check(self, event: bytes) -> None:
        data = event_data(event)
        if data is None:
            return  # comments and keep-alives
        if data != b"[DONE]":
            json_object(data, "the stream's first event")
        self.checked = True

    def feed(self, event: bytes) -> list[bytes]:
        raise NotImplementedError

    def finish(self) -> list[bytes]:
        return []

    def whole_events(self, chunk: bytes) -> bool:
        """True when the chunk holds only whole events and nothing is held back (so it may pass untouched)."""
        if self.sse.pending or not chunk.endswith(b"\n\n") or b"\r" in chunk:
            return False
        rest = chunk
        while not self.checked and rest:  # the first read: its first event with data is checked
            event, _, rest = rest.partition(b"\n\n")
            if event:
                self.check(event)
        return self.checked  # no data yet (comments only, or not SSE at all): the slow path decides

    def feed_bytes(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        for event in self.sse.feed(chunk):
            if not self.checked:
                self.check(event)
            out.extend(self.feed(event))
        return b"".join(out)

    def end(self) -> bytes:
        rest = self.sse.rest()
        if rest and not self.checked:
            self.check(rest)
        out = self.feed(rest) if rest else []
        return b"".join([*out, *self.finish()])
