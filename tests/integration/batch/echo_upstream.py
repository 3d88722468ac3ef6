"""An OpenAI-shaped loopback upstream that answers each chat request with its own last message,
so a batch's output can be checked line by line; it counts requests, the most it saw at once,
and can hold requests until the test lets them go."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from aiohttp import web

from tests.loopback import free_port


class EchoUpstream:
    def __init__(self) -> None:
        self.port = free_port()
        self.seen: Counter[str] = Counter()  # prompt -> times asked
        self.running = 0
        self.most = 0
        self.gate: asyncio.Event | None = None  # when set to an unset event, requests wait for it
        self.arrived = asyncio.Event()
        self.delay = 0.0  # seconds each chat answer takes
        self._progress = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def total(self) -> int:
        return sum(self.seen.values())

    async def answered(self, count: int) -> None:
        """Returns once `count` chat requests were answered."""
        while self.total < count:
            self._progress.clear()
            await self._progress.wait()

    async def start(self) -> EchoUpstream:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        prompt = str(body["messages"][-1]["content"])
        self.running += 1
        self.most = max(self.most, self.running)
        self.arrived.set()
        try:
            if prompt.startswith("flaky") and not self.seen[f"{prompt} (failed)"]:
                self.seen[f"{prompt} (failed)"] += 1  # its first attempt fails
                return web.json_response({"error": {"message": "try again", "type": "server_error",
                                                    "param": None, "code": None}}, status=500)
            if prompt == "fail":
                return web.json_response({"error": {"message": "bad prompt", "type": "invalid_request_error",
                                                    "param": None, "code": "bad_prompt"}}, status=400)
            if self.gate is not None:
                await self.gate.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            self.seen[prompt] += 1
            self._progress.set()
            return web.json_response({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": f"echo: {prompt}"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
        finally:
            self.running -= 1

    async def _embeddings(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        self.seen[str(body["input"])] += 1
        return web.json_response({"object": "list", "model": body["model"],
                                  "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}],
                                  "usage": {"prompt_tokens": 4, "total_tokens": 4}})
