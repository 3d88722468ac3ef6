"""OpenAI-shaped providers: OpenAI, Azure OpenAI and self-hosted OpenAI-compatible engines.

Requests go out with the provider's parameter fixes; answers come back as the
upstream sent them, byte for byte, unless a reasoning filter or the dropped
usage chunk requires a rewrite.
"""

from __future__ import annotations

from typing import Any

import orjson

from lockgate.api.ir import Provider, ProviderModel
from lockgate.proxy.filters.params import with_usage_requested
from lockgate.proxy.filters.reasoning import ReasoningSplitter, split_reasoning
from lockgate.proxy.providers.base import (
    OPENAI_PATHS,
    Answer,
    EventStream,
    Operation,
    UpstreamCall,
    Usage,
    json_object,
    openai_error_body,
    sse,
)
from lockgate.proxy.sse import event_data


def usage_of(payload: dict[str, Any]) -> Usage | None:
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None
    input_tokens = usage.get("prompt_tokens", usage.get("input_tokens", 0)) or 0
    output_tokens = usage.get("completion_tokens", usage.get("output_tokens", 0)) or 0
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    cached = details.get("cached_tokens") or 0 if isinstance(details, dict) else 0
    return Usage(int(input_tokens), int(output_tokens), True, int(cached))


class OpenAIAdapter:
    def supports(self, op: Operation) -> bool:
        return op != "messages"

    def url(self, op: Operation, base_url: str, model: ProviderModel, provider: Provider) -> str:
        return base_url + OPENAI_PATHS[op]

    def auth_headers(self, credential: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {credential}"} if credential else {}

    def build(self, op: Operation, body: dict[str, Any], provider: Provider, model: ProviderModel, base_url: str,
              credential: str | None, request_id: str, raw: bytes = b"") -> tuple[UpstreamCall, bool]:
        out = body  # already filtered for this provider (the pipeline's request filters)
        client_wants_usage = True
        if op in ("chat", "completions") and out.get("stream"):
            out, client_wants_usage = with_usage_requested(out)
        headers = {"Content-Type": "application/json", "x-request-id": request_id, **self.auth_headers(credential)}
        # The client's own bytes when nothing changed them. They parsed as this very object; a JSON object
        # with a duplicate name means its last value to us, as to the common parsers upstream.
        data = raw if raw and out is body else orjson.dumps(out)
        return UpstreamCall(self.url(op, base_url, model, provider), headers, data), client_wants_usage

    def answer(self, op: Operation, data: bytes, provider: Provider, requested_model: str) -> Answer:
        payload = json_object(data, "the answer")
        usage = usage_of(payload) or Usage()
        compat = provider.compat
        if op == "chat" and compat.reasoning != "keep":
            for choice in payload.get("choices") or ():
                message = choice.get("message") or {}
                content = message.get("content")
                if isinstance(content, str):
                    text, reasoning = split_reasoning(content, *compat.reasoning_tags)
                    message["content"] = text
                    if reasoning and compat.reasoning == "separate":
                        message["reasoning_content"] = reasoning
            data = orjson.dumps(payload)
        return Answer(data, usage)

    def error_body(self, op: Operation, data: bytes) -> bytes:
        return openai_error_body(data)

    def stream(self, op: Operation, provider: Provider, requested_model: str, client_wants_usage: bool) -> OpenAIStream:
        compat = provider.compat
        reasoning = compat.reasoning if op == "chat" else "keep"
        return OpenAIStream(client_wants_usage, reasoning, compat.reasoning_tags)


class AzureOpenAIAdapter(OpenAIAdapter):
    """Azure OpenAI: deployment URLs with api-version, and the api-key header."""

    def supports(self, op: Operation) -> bool:
        return op in ("chat", "completions", "embeddings")

    def url(self, op: Operation, base_url: str, model: ProviderModel, provider: Provider) -> str:
        version = provider.api_version or "2024-10-21"
        return f"{base_url}/openai/deployments/{model.upstream_model}{OPENAI_PATHS[op]}?api-version={version}"

    def auth_headers(self, credential: str | None) -> dict[str, str]:
        return {"api-key": credential} if credential else {}


def _has_usage(data: bytes) -> bool:
    return b'"usage":{' in data or b'"usage": {' in data


class OpenAIStream(EventStream):
    """OpenAI chunks passed through; usage recorded; the injected usage chunk dropped; reasoning split."""

    def __init__(self, client_wants_usage: bool, reasoning: str, tags: tuple[str, str]) -> None:
        super().__init__()
        self.client_wants_usage = client_wants_usage
        self.reasoning = reasoning
        self.splitter = ReasoningSplitter(*tags) if reasoning != "keep" else None
        self.chunks = 0
        self._last: dict[str, Any] | None = None  # a recent chunk, template for a flushed remainder

    def feed_bytes(self, chunk: bytes) -> bytes:
        # The fast path: whole events, no filter, no usage to read: passed on untouched.
        if self.splitter is None and self.whole_events(chunk) and not _has_usage(chunk):
            self.chunks += chunk.count(b"data:")
            return chunk
        return super().feed_bytes(chunk)

    def feed(self, event: bytes) -> list[bytes]:
        data = event_data(event)
        if data is None:
            return []
        if data == b"[DONE]":
            return [*self.finish(), sse(data)]
        if self.splitter is None and not _has_usage(data):
            self.chunks += 1
            return [event + b"\n\n"]  # the fast path: forwarded untouched
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return [event + b"\n\n"]
        usage = usage_of(payload)
        if usage is None and isinstance(payload.get("response"), dict):  # Responses API: response.completed
            usage = usage_of(payload["response"])
            if usage is not None:
                self.usage = usage
                return [event + b"\n\n"]
        if usage is not None:
            self.usage = usage
            if not self.client_wants_usage:
                if not payload.get("choices"):
                    return []
                payload.pop("usage", None)
            elif self.splitter is None:
                return [event + b"\n\n"]  # the client asked for it: as the upstream sent it
        else:
            self.chunks += 1
        if self.splitter is not None:
            self._split(payload)
        return [sse(orjson.dumps(payload))]

    def _split(self, payload: dict[str, Any]) -> None:
        assert self.splitter is not None
        for choice in payload.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                content, reasoning = self.splitter.feed(text)
                delta["content"] = content
                if reasoning and self.reasoning == "separate":
                    delta["reasoning_content"] = reasoning
                self._last = payload

    def finish(self) -> list[bytes]:
        if self.splitter is None or self._last is None:
            return []
        content, reasoning = self.splitter.flush()
        if not content and not (reasoning and self.reasoning == "separate"):
            return []
        delta: dict[str, Any] = {"content": content}
        if reasoning and self.reasoning == "separate":
            delta["reasoning_content"] = reasoning
        last = self._last
        self._last = None
        chunk: dict[str, Any] = {k: last[k] for k in ("id", "object", "created", "model") if k in last}
        chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": None}]
        return [sse(orjson.dumps(chunk))]
