"""Legacy clients and `input_required` results: the gateway asks the client itself.

A 2025-11-25 client cannot read an `input_required` result (2026-07-28); it
answers server-to-client requests instead. When a backend the gateway serves
returns one, the gateway sends each input request to the client on the call's
SSE stream, waits for the answers the client POSTs back in its session, and
retries the call with them. The answers must reach the replica holding the
stream, so a load balancer in front needs session affinity for these calls.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from lockgate.proxy.mcp import jsonrpc as rpc

MAX_ROUNDS = 8
ANSWER_WAIT_SECONDS = 300.0
Retry = Callable[[dict[str, Any], Any], Awaitable[dict[str, Any]]]
Emit = Callable[[rpc.Message], Awaitable[None]]


class InputRelay:
    def __init__(self) -> None:
        self._waiting: dict[tuple[str, str], asyncio.Future[rpc.Message]] = {}

    def answer(self, session: str, message: rpc.Message) -> bool:
        """Deliver a client's response to the call waiting for it; False when none is."""
        future = self._waiting.pop((session, str(message.get("id"))), None)
        if future is None or future.done():
            return False
        future.set_result(message)
        return True

    async def resolve(self, session: str, result: dict[str, Any], retry: Retry, emit: Emit) -> dict[str, Any]:
        """Turn input_required rounds into client requests until the call completes."""
        for _ in range(MAX_ROUNDS):
            if result.get("resultType") != "input_required":
                return result
            requests = result.get("inputRequests")
            answers = await self._ask(session, requests if isinstance(requests, dict) else {}, emit)
            result = await retry(answers, result.get("requestState"))
        if result.get("resultType") == "input_required":
            raise rpc.RpcError(rpc.INTERNAL_ERROR, f"the call still needed input after {MAX_ROUNDS} rounds")
        return result

    async def _ask(self, session: str, requests: dict[str, Any], emit: Emit) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        asked: dict[str, tuple[str, str, asyncio.Future[rpc.Message]]] = {}
        try:
            for name, request in requests.items():
                request_id = f"lockgate-input-{secrets.token_hex(8)}"
                future: asyncio.Future[rpc.Message] = loop.create_future()
                self._waiting[(session, request_id)] = future
                method = str(request.get("method")) if isinstance(request, dict) else ""
                asked[name] = (request_id, method, future)
                params = request.get("params") if isinstance(request, dict) else None
                await emit({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}})
            answers: dict[str, Any] = {}
            for name, (_, method, future) in asked.items():
                try:
                    reply = await asyncio.wait_for(future, ANSWER_WAIT_SECONDS)
                except asyncio.TimeoutError:
                    raise rpc.RpcError(rpc.INTERNAL_ERROR, f"the client did not answer {method}") from None
                if "error" in reply:
                    raise rpc.RpcError(rpc.INTERNAL_ERROR, f"the client refused {method}", reply.get("error"))
                answers[name] = reply.get("result") or {}
            return answers
        finally:
            for request_id, _, _ in asked.values():
                self._waiting.pop((session, request_id), None)
