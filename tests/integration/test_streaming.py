"""Streaming through Lockgate: unbuffered events, usage, mid-stream failure, client disconnect."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai

from tests.gatewayconfig import KEY, provider, snapshot
from tests.integration.conftest import base_url
from tests.upstreams import Action

MESSAGES = [{"role": "user", "content": "hi"}]


async def test_stream_without_usage_request_drops_injected_usage_chunk(upstream, gateway) -> None:
    fake = await upstream("openai")
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url)]))
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY)
    chunks = [c async for c in await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there, friend."
    assert all(c.choices for c in chunks), "the usage chunk the client did not ask for must be dropped"
    assert fake.received[-1].body["stream_options"] == {"include_usage": True}
    metrics = await _metrics(server)
    assert 'gen_ai_client_token_usage_sum{consumer="team-a",gateway="lockgate",host="*",model="gpt-4o",' \
           'provider="ns/openai",token_type="output",upstream_model="gpt-4o-up"} 7.0' in metrics


async def test_stream_with_usage_request_keeps_usage_chunk(upstream, gateway) -> None:
    fake = await upstream("openai")
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url)]))
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY)
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                  stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7



async def test_responses_api_stream_passes_typed_events_and_counts_usage(upstream, gateway, tmp_path) -> None:
    fake = await upstream("openai", text="Typed events pass through.")
    log_path = tmp_path / "access.log"
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url)]), access_log=str(log_path))
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
    events = [e async for e in await client.responses.create(model="gpt-4o", input="hi", stream=True)]
    assert [e.type for e in events][:2] == ["response.created", "response.output_text.delta"]
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Typed events pass through."
    assert events[-1].type == "response.completed" and events[-1].response.usage.output_tokens == 7
    assert "stream_options" not in fake.received[-1].body  # chat's usage request is not the Responses API's
    server.gateway.deps.access_log.flush()
    line = json.loads(log_path.read_text().splitlines()[-1])
    assert (line["path"], line["stream"], line["input_tokens"], line["output_tokens"], line["tokens_reported"]) == \
        ("/v1/responses", True, 11, 7, True)


async def test_stream_is_not_buffered(upstream, gateway) -> None:
    fake = await upstream("openai")
    fake.then(Action(chunks=["a", "b", "c"], chunk_delay=0.3))
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url)]))
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY)
    loop = asyncio.get_running_loop()
    start = loop.time()
    first_content_at = None
    async for chunk in await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            first_content_at = loop.time() - start
            break
    assert first_content_at is not None and first_content_at < 0.6  # the whole stream takes ~0.9 s


async def test_mid_stream_failure_ends_with_an_error_event(upstream, gateway) -> None:
    fake = await upstream("openai")
    fake.then(Action(chunks=["one", " two", " three"], break_after=2))
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url)]))
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY)
    received: list[str] = []
    try:
        async for chunk in await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
        raised = None
    except openai.APIError as exc:
        raised = exc
    assert "".join(received) == "one two"
    assert raised is not None and "upstream" in str(raised.message).lower()
    assert 'error_type="upstream_error"' in await _metrics(server)


async def test_client_disconnect_cancels_the_upstream(upstream, gateway) -> None:
    fake = await upstream("openai")
    fake.then(Action(chunks=["x"] * 50, chunk_delay=0.2))
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url)]))
    async with aiohttp.ClientSession() as session:
        response = await session.post(base_url(server) + "/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                                       json={"model": "gpt-4o", "messages": MESSAGES, "stream": True})
        await response.content.readline()
        response.close()  # the client goes away mid-stream
    await asyncio.wait_for(fake.stream_cancelled.wait(), 3)  # well before the 10 s the stream would take
    metrics = await _wait_metric(server, 'status_code="499"')
    assert 'error_type="client_closed"' in metrics


async def _metrics(server) -> str:  # type: ignore[no-untyped-def]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{server.admin_port}/metrics") as response:
            return await response.text()


async def _wait_metric(server, needle: str, timeout: float = 3.0) -> str:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        text = await _metrics(server)
        if needle in text or asyncio.get_running_loop().time() > deadline:
            return text
        await asyncio.sleep(0.02)
