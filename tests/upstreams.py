"""Loopback upstreams shaped like OpenAI, Azure OpenAI, Anthropic and vLLM, under test control.

A `FakeUpstream` answers chat (streamed or not), completions, embeddings and
responses in its provider's shape. Tests queue `Action`s to make the next
requests fail, hang, break mid-stream or wait, and read back what was received.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

Kind = Literal["openai", "azure", "anthropic", "vllm"]


@dataclass
class Action:
    status: int = 200
    retry_after: float | None = None
    delay: float = 0.0  # before the headers
    hang: bool = False  # never answer
    break_after: int | None = None  # stream: drop the connection after this many chunks
    chunk_delay: float = 0.0  # stream: pause between chunks
    chunks: list[str] | None = None  # stream/answer text pieces
    text: str | None = None
    tool_call: dict[str, Any] | None = None


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes = b""  # the body's bytes as they arrived


async def _paced(request: web.Request, action: Action, index: int) -> bool:
    """Before a stream's piece `index`: False when the script breaks the stream there (the connection
    is dropped), else True once the script's pause between pieces is over."""
    if action.break_after is not None and index >= action.break_after:
        assert request.transport is not None
        request.transport.close()
        return False
    if action.chunk_delay:
        await asyncio.sleep(action.chunk_delay)
    return True


@dataclass
class FakeUpstream:
    kind: Kind = "openai"
    name: str = "upstream"
    text: str = "Hello there, friend."
    script: deque[Action] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    usage: tuple[int, int] = (11, 7)
    cached_tokens: int = 0  # of the prompt tokens, those reported as read from the prompt cache
    stream_cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    in_stream: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    bind: str = "127.0.0.1"  # the node tests serve pods on the host's end of their link
    embed: Callable[[str], list[float]] | None = None  # embeddings computed from the text (else a fixed vector)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        base = f"http://{self.bind}:{self.port}"
        return base + "/v1" if self.kind in ("openai", "vllm") else base

    @property
    def host(self) -> tuple[str, int]:
        return self.bind, self.port

    def then(self, *actions: Action) -> FakeUpstream:
        self.script.extend(actions)
        return self

    async def start(self) -> FakeUpstream:
        app = web.Application()
        if self.kind == "anthropic":
            app.router.add_post("/v1/messages", self._messages)
        elif self.kind == "azure":
            app.router.add_post("/openai/deployments/{deployment}/{op:.*}", self._openai)
        else:
            app.router.add_post("/v1/{op:.*}", self._openai)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.bind, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _take(self, request: web.Request) -> tuple[Action, dict[str, Any]]:
        raw = await request.read()
        body = json.loads(raw)
        self.received.append(Received(request.path, dict(request.query), dict(request.headers), body, raw))
        action = self.script.popleft() if self.script else Action()
        if action.delay:
            await asyncio.sleep(action.delay)
        if action.hang:
            await asyncio.Event().wait()
        return action, body

    def _error(self, action: Action) -> web.Response:
        headers = {"Retry-After": str(action.retry_after)} if action.retry_after is not None else {}
        body = {"error": {"message": f"{self.name} failed", "type": "server_error", "code": None}}
        if self.kind == "anthropic":
            body = {"type": "error", "error": {"type": "api_error", "message": f"{self.name} failed"}}
        return web.json_response(body, status=action.status, headers=headers)

    def _pieces(self, action: Action) -> list[str]:
        if action.chunks is not None:
            return action.chunks
        text = action.text if action.text is not None else self.text
        words = text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    # --- OpenAI, Azure OpenAI, vLLM ---------------------------------------

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        action, body = await self._take(request)
        if action.status != 200:
            return self._error(action)
        op = request.match_info["op"]
        model = body.get("model", "unknown")
        prompt_tokens, completion_tokens = self.usage
        usage: dict[str, Any] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                 "total_tokens": prompt_tokens + completion_tokens}
        if self.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if op == "embeddings":
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [{"object": "embedding", "index": i,
                     "embedding": self.embed(text) if self.embed is not None else [0.1, 0.2, 0.3]}
                    for i, text in enumerate(inputs)]
            return web.json_response({"object": "list", "data": data, "model": model,
                                      "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}})
        if op == "responses":
            if body.get("stream"):
                return await self._responses_stream(request, action, model)
            return web.json_response(self._response_object(model, "".join(self._pieces(action)), "completed"))
        if body.get("stream"):
            return await self._openai_stream(request, action, body, usage, op)
        text = "".join(self._pieces(action))
        if op == "completions":
            return web.json_response({"id": "cmpl-1", "object": "text_completion", "created": int(time.time()),
                                      "model": model, "choices": [{"index": 0, "text": text, "finish_reason": "stop",
                                                                   "logprobs": None}], "usage": usage})
        message: dict[str, Any] = {"role": "assistant", "content": text}
        finish = "stop"
        if action.tool_call is not None:
            message = {"role": "assistant", "content": None, "tool_calls": [action.tool_call]}
            finish = "tool_calls"
        return web.json_response({"id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
                                  "model": model, "choices": [{"index": 0, "message": message,
                                                               "finish_reason": finish, "logprobs": None}],
                                  "usage": usage, "system_fingerprint": self.name})

    def _response_object(self, model: str, text: str, status: str) -> dict[str, Any]:
        """A Responses API object; usage only once completed, as OpenAI sends it."""
        prompt_tokens, completion_tokens = self.usage
        done = status == "completed"
        return {"id": "resp_1", "object": "response", "created_at": int(time.time()), "model": model,
                "status": status,
                "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                            "content": [{"type": "output_text", "text": text, "annotations": []}]}] if done else [],
                "usage": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens} if done else None}

    async def _responses_stream(self, request: web.Request, action: Action, model: str) -> web.StreamResponse:
        """The Responses API's typed events: created, text deltas, completed (no [DONE])."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        pieces = self._pieces(action)
        events: list[dict[str, Any]] = [{"type": "response.created",
                                         "response": self._response_object(model, "", "in_progress")}]
        events += [{"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0,
                    "content_index": 0, "delta": piece} for piece in pieces]
        events.append({"type": "response.completed",
                       "response": self._response_object(model, "".join(pieces), "completed")})
        for number, event in enumerate(events):
            event["sequence_number"] = number
            await response.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        await response.write_eof()
        return response

    async def _openai_stream(self, request: web.Request, action: Action, body: dict[str, Any],
                             usage: dict[str, Any], op: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        model = body.get("model", "unknown")
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            if op == "completions":
                choice: dict[str, Any] = {"index": 0, "text": delta.get("content", ""), "finish_reason": finish}
                obj = "text_completion"
            else:
                choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
                obj = "chat.completion.chunk"
            payload: dict[str, Any] = {"id": "chatcmpl-1", "object": obj, "created": created, "model": model,
                                       "choices": [choice]}
            if include_usage:
                payload["usage"] = None
            return b"data: " + json.dumps(payload).encode() + b"\n\n"

        try:
            self.in_stream.set()
            if action.break_after == 0:  # not a single event
                assert request.transport is not None
                request.transport.close()
                return response
            await response.write(chunk({"role": "assistant", "content": ""}))
            for i, piece in enumerate(self._pieces(action)):
                if not await _paced(request, action, i):
                    return response
                await response.write(chunk({"content": piece}))
            await response.write(chunk({}, "stop"))
            if include_usage:
                payload = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": created,
                           "model": model, "choices": [], "usage": usage}
                await response.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (asyncio.CancelledError, ConnectionResetError):
            self.stream_cancelled.set()
            raise
        return response

    # --- Anthropic ---------------------------------------------------------

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        action, body = await self._take(request)
        if action.status != 200:
            return self._error(action)
        input_tokens, output_tokens = self.usage
        model = body.get("model", "unknown")
        pieces = self._pieces(action)
        if not body.get("stream"):
            content: list[dict[str, Any]] = [{"type": "text", "text": "".join(pieces)}]
            stop = "end_turn"
            if action.tool_call is not None:
                content = [{"type": "tool_use", "id": action.tool_call["id"], "name": action.tool_call["name"],
                            "input": action.tool_call["input"]}]
                stop = "tool_use"
            return web.json_response({"id": "msg_1", "type": "message", "role": "assistant", "model": model,
                                      "content": content, "stop_reason": stop, "stop_sequence": None,
                                      "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(name: str, payload: dict[str, Any]) -> None:
            await response.write(f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode())

        try:
            self.in_stream.set()
            await send("message_start", {"type": "message_start", "message": {
                "id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}})
            await send("content_block_start", {"type": "content_block_start", "index": 0,
                                               "content_block": {"type": "text", "text": ""}})
            for i, piece in enumerate(pieces):
                if not await _paced(request, action, i):
                    return response
                await send("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                   "delta": {"type": "text_delta", "text": piece}})
            await send("content_block_stop", {"type": "content_block_stop", "index": 0})
            await send("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                                          "stop_sequence": None},
                                         "usage": {"output_tokens": output_tokens}})
            await send("message_stop", {"type": "message_stop"})
            await response.write_eof()
        except (asyncio.CancelledError, ConnectionResetError):
            self.stream_cancelled.set()
            raise
        return response
