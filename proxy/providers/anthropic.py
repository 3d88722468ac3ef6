"""Anthropic: OpenAI chat translated to the Messages API, and /v1/messages passed through."""

from __future__ import annotations

from typing import Any

import orjson

from lockgate.api.ir import Provider, ProviderModel
from lockgate.proxy.providers.anthropic_translate import (
    StreamToOpenAI,
    error_to_openai,
    request_to_anthropic,
    response_to_openai,
)
from lockgate.proxy.providers.base import (
    DONE,
    Answer,
    EventStream,
    Operation,
    UpstreamCall,
    UpstreamStreamError,
    Usage,
    json_object,
    sse,
)
from lockgate.proxy.sse import event_data, event_name

__all__ = ["AnthropicAdapter", "UpstreamStreamError"]

ANTHROPIC_VERSION = "2023-06-01"


def _loads(data: bytes | None) -> dict[str, Any] | None:
    if not data:
        return None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _messages_usage(usage: dict[str, Any] | None) -> Usage:
    usage = usage or {}
    prompt = sum(int(usage.get(k) or 0) for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"))
    return Usage(prompt, int(usage.get("output_tokens") or 0), True, int(usage.get("cache_read_input_tokens") or 0))


class AnthropicAdapter:
    def supports(self, op: Operation) -> bool:
        return op in ("chat", "messages")

    def build(self, op: Operation, body: dict[str, Any], provider: Provider, model: ProviderModel, base_url: str,
              credential: str | None, request_id: str, raw: bytes = b"") -> tuple[UpstreamCall, bool]:
        if op == "chat":
            out = request_to_anthropic(body, model.upstream_model)
            options = body.get("stream_options")
            client_wants_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        else:
            out = {**body, "model": model.upstream_model}
            client_wants_usage = True
        headers = {"Content-Type": "application/json", "anthropic-version": ANTHROPIC_VERSION, "x-request-id": request_id}
        if credential:
            headers["x-api-key"] = credential
        # /v1/messages to Anthropic with nothing changed: the client's own bytes (see OpenAIAdapter.build).
        data = raw if raw and op == "messages" and body.get("model") == model.upstream_model else orjson.dumps(out)
        return UpstreamCall(base_url + "/v1/messages", headers, data), client_wants_usage

    def answer(self, op: Operation, data: bytes, provider: Provider, requested_model: str) -> Answer:
        payload = json_object(data, "the answer")
        usage = _messages_usage(payload.get("usage"))
        if op == "messages":
            return Answer(data, usage)
        return Answer(orjson.dumps(response_to_openai(payload, requested_model)), usage)

    def error_body(self, op: Operation, data: bytes) -> bytes:
        payload = _loads(data)
        if op == "messages":
            return data if payload is not None and isinstance(payload.get("error"), dict) else orjson.dumps(
                {"type": "error", "error": {"type": "api_error", "message": "The upstream refused the request."}})
        return orjson.dumps(error_to_openai(payload))

    def stream(self, op: Operation, provider: Provider, requested_model: str, client_wants_usage: bool
               ) -> MessagesToChunks | MessagesPassthrough:
        if op == "messages":
            return MessagesPassthrough()
        return MessagesToChunks(requested_model, client_wants_usage)


class MessagesPassthrough(EventStream):
    """/v1/messages streamed as is; usage read from message_start and message_delta."""

    def feed_bytes(self, chunk: bytes) -> bytes:
        if b"message_start" not in chunk and b"message_delta" not in chunk and self.whole_events(chunk):
            return chunk
        return super().feed_bytes(chunk)

    def feed(self, event: bytes) -> list[bytes]:
        name = event_name(event)
        if name in (b"message_start", b"message_delta"):
            payload = _loads(event_data(event)) or {}
            if name == b"message_start":
                self.usage = _messages_usage((payload.get("message") or {}).get("usage"))
            else:
                output = (payload.get("usage") or {}).get("output_tokens")
                if output is not None:
                    self.usage.output_tokens = int(output)
        return [event + b"\n\n"]


class MessagesToChunks(EventStream):
    """Messages stream events turned into OpenAI chunks, ending with usage (if asked) and [DONE]."""

    def __init__(self, model: str, client_wants_usage: bool) -> None:
        super().__init__()
        self.translator = StreamToOpenAI(model)
        self.client_wants_usage = client_wants_usage
        self.done = False

    def feed(self, event: bytes) -> list[bytes]:
        payload = _loads(event_data(event))
        if payload is None:
            return []
        kind = payload.get("type") or (event_name(event) or b"").decode()
        if kind == "error":
            raise UpstreamStreamError(error_to_openai(payload))
        if kind == "message_stop":
            return self.finish()
        out = [sse(orjson.dumps(chunk)) for chunk in self.translator.event(kind, payload)]
        self.usage = Usage(self.translator.input_tokens, self.translator.output_tokens, True,
                           self.translator.cached_tokens)
        return out

    def finish(self) -> list[bytes]:
        if self.done:
            return []
        self.done = True
        out = [sse(orjson.dumps(self.translator.usage_chunk()))] if self.client_wants_usage else []
        return [*out, DONE]
