"""Failover from upstreams that answer badly: an error body without end is not read, a big one not whole."""

from __future__ import annotations

import asyncio

import openai

from lockgate.api import ir
from tests.gatewayconfig import KEY, provider, snapshot
from tests.integration.conftest import base_url
from tests.rawhttp import RawRequest, RawServer

MESSAGES = [{"role": "user", "content": "hi"}]


async def test_a_503_with_an_endless_body_fails_over_at_once(upstream, gateway) -> None:  # type: ignore[no-untyped-def]
    sent = 0

    async def endless(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        nonlocal sent
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            while sent < 1024 * 1024 * 1024:
                writer.write(b"4000\r\n" + b"e" * 0x4000 + b"\r\n")
                sent += 0x4000
                await writer.drain()
        except ConnectionError:
            pass
        return False

    good = await upstream("openai", text="good")
    async with RawServer(endless) as bad:
        snap = snapshot([
            provider("ns/bad", "openai", bad.url + "/v1", timeouts=ir.Timeouts(first_token=30)),
            provider("ns/good", "openai", good.url, priority=1),
        ])
        server = await gateway(snap)
        client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
        async with asyncio.timeout(10):  # reading the error body whole would take until the 30 s timeout
            answer = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert answer.choices[0].message.content == "good"
        await asyncio.wait_for(bad.closed[0].wait(), 10)  # the gateway dropped the connection
        assert sent < 64 * 1024 * 1024
