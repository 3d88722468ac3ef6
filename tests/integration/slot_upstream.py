"""A loopback OpenAI-shaped upstream that counts requests in flight: the most it saw at
once, the order requests arrived in (by their message text), and a gate the test opens."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp import web

from tests.loopback import free_port


class SlotUpstream:
    def __init__(self, hold: float = 0.0, order: list[str] | None = None,
                 gate: asyncio.Event | None = None) -> None:
        self.hold = hold  # seconds each answer takes once the gate is open
        self.gate = gate or asyncio.Event()
        self.in_flight = 0
        self.most = 0  # requests in flight at once, at most
        self.order: list[str] = order if order is not None else []  # message texts, in arrival order (may be
        # shared by several upstreams)
        self.arrived_at: dict[str, float] = {}  # message text -> wall-clock arrival
        self.arrived = asyncio.Condition()
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def host(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    async def start(self) -> SlotUpstream:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 20.0) -> None:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(condition), timeout)

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            async with self.arrived:
                self.order.append(body["messages"][-1]["content"])
                self.arrived_at[self.order[-1]] = time.time()
                self.arrived.notify_all()
            await self.gate.wait()
            if self.hold:
                await asyncio.sleep(self.hold)
        finally:
            self.in_flight -= 1
        return web.json_response({
            "id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
