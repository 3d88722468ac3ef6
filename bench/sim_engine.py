"""A simulated inference engine for the balancing benchmark.

Each engine has a fixed number of slots (requests decoded at once); the rest
wait in a FIFO queue, so load matters. Prefill costs time per uncached prompt
token; a prefix cache (LRU of message-chain digests, bounded in tokens) makes
a shared system prompt or chat history cheap the second time. Decode costs
time per output token. It streams OpenAI-style SSE chunks, reports cached
tokens in `usage.prompt_tokens_details`, and serves vLLM-named Prometheus
gauges on /metrics.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def tokens(text: str) -> int:
    """The benchmark's tokenizer: four characters a token."""
    return max(1, len(text) // 4)


def message_chain(messages: Sequence[dict[str, str]]) -> list[tuple[str, int]]:
    """(digest of the conversation up to and including each message, that message's tokens)."""
    chain: list[tuple[str, int]] = []
    digest = hashlib.blake2b(digest_size=16)
    for message in messages:
        digest.update(f"{message['role']}\0{message['content']}\0".encode())
        chain.append((digest.copy().hexdigest(), tokens(message["content"])))
    return chain


@dataclass
class PrefixCache:
    capacity_tokens: int
    entries: OrderedDict[str, int] = field(default_factory=OrderedDict)
    held_tokens: int = 0

    def lookup(self, chain: Sequence[tuple[str, int]]) -> int:
        """Tokens of the longest cached leading run of the chain (refreshing what it uses)."""
        cached = 0
        for digest, size in chain:
            if digest not in self.entries:
                break
            self.entries.move_to_end(digest)
            cached += size
        return cached

    def insert(self, chain: Sequence[tuple[str, int]]) -> None:
        for digest, size in chain:
            if digest in self.entries:
                self.entries.move_to_end(digest)
                continue
            self.entries[digest] = size
            self.held_tokens += size
        while self.held_tokens > self.capacity_tokens and self.entries:
            _, size = self.entries.popitem(last=False)
            self.held_tokens -= size


@dataclass
class EngineSpec:
    name: str
    slots: int  # requests decoded at once
    prefill_rate: float  # uncached prompt tokens per second
    decode_interval: float  # seconds per output token
    cache_tokens: int  # prefix cache size
    kv_tokens: int  # KV capacity the running requests share (for the usage gauge)


class SimEngine:
    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.cache = PrefixCache(spec.cache_tokens)
        self._slots = asyncio.Semaphore(spec.slots)
        self.waiting = 0
        self.running = 0
        self.running_tokens = 0
        self.served = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/metrics", self.metrics)
        return app

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        messages: list[dict[str, str]] = body["messages"]
        max_tokens = int(body["max_tokens"])
        chain = message_chain(messages)
        prompt_tokens = sum(size for _, size in chain)
        self.waiting += 1
        async with self._slots:
            self.waiting -= 1
            self.running += 1
            self.running_tokens += prompt_tokens + max_tokens
            try:
                return await self._serve(request, messages, chain, prompt_tokens, max_tokens)
            finally:
                self.running -= 1
                self.running_tokens -= prompt_tokens + max_tokens
                self.served += 1

    async def _serve(
        self,
        request: web.Request,
        messages: list[dict[str, str]],
        chain: list[tuple[str, int]],
        prompt_tokens: int,
        max_tokens: int,
    ) -> web.StreamResponse:
        spec = self.spec
        cached = self.cache.lookup(chain)
        await asyncio.sleep((prompt_tokens - cached) / spec.prefill_rate)
        self.cache.insert(chain)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        reply = " ".join(f"w{i % 10}" for i in range(max_tokens))[: max_tokens * 4]
        await response.write(_sse({"choices": [{"index": 0, "delta": {"role": "assistant", "content": reply[:4]}}]}))
        await asyncio.sleep((max_tokens - 1) * spec.decode_interval)
        # the generated reply is cached too: the next turn's prompt starts with it
        self.cache.insert(message_chain([*messages, {"role": "assistant", "content": reply}])[-1:])
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": max_tokens,
            "total_tokens": prompt_tokens + max_tokens,
            "prompt_tokens_details": {"cached_tokens": cached},
        }
        await response.write(_sse({"choices": [{"index": 0, "delta": {"content": reply[4:]}, "finish_reason": "length"}], "usage": usage}))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def metrics(self, request: web.Request) -> web.Response:
        usage = min(1.0, self.running_tokens / self.spec.kv_tokens)
        text = (
            "# TYPE vllm:num_requests_waiting gauge\n"
            f'vllm:num_requests_waiting{{model_name="sim"}} {self.waiting}\n'
            "# TYPE vllm:num_requests_running gauge\n"
            f'vllm:num_requests_running{{model_name="sim"}} {self.running}\n'
            "# TYPE vllm:kv_cache_usage_perc gauge\n"
            f'vllm:kv_cache_usage_perc{{model_name="sim"}} {usage:.4f}\n'
        )
        return web.Response(text=text, content_type="text/plain")


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()
