"""What the data plane settles and counts: the prompt of an interrupted stream, one request per
failover, and reservations for requests without max_tokens."""

from __future__ import annotations

import aiohttp
import openai
import orjson
import pytest

from lockgate.api import ir
from lockgate.proxy.server import ProxyServer, ProxySettings
from lockgate.proxy.source import StaticSource
from tests.gatewayconfig import KEY, key, provider, snapshot
from tests.integration.test_quota_pipeline import RecordingQuota, _settled, quota_gateway  # noqa: F401
from tests.upstreams import Action

LONG = [{"role": "user", "content": "word " * 200}]  # about 250 prompt tokens by the 4-characters rule


def _client(server: ProxyServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=KEY, max_retries=0)


async def _usage(server: ProxyServer) -> dict[str, object]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{server.admin_port}/usage") as response:
            return (await response.json())["ns/team-a"]  # type: ignore[no-any-return]


async def test_an_interrupted_stream_settles_the_prompt_estimate_and_the_output(upstream, quota_gateway) -> None:
    fake = await upstream("openai")
    fake.then(Action(chunks=["x"] * 50, chunk_delay=0.1))  # no usage chunk: the client leaves first
    quota = RecordingQuota()
    server = await quota_gateway(snapshot([provider("ns/openai", "openai", fake.url)]), quota)
    body = {"model": "gpt-4o", "messages": LONG, "stream": True}
    prompt = len(orjson.dumps(body)) // 4
    async with aiohttp.ClientSession() as session:
        response = await session.post(f"http://127.0.0.1:{server.port}/v1/chat/completions",
                                      headers={"Authorization": f"Bearer {KEY}"}, json=body)
        for _ in range(3):
            await response.content.readline()
        response.close()
    await _settled(quota, 1)
    assert prompt > 200
    assert prompt < quota.settled[0][1] < prompt + 50  # the prompt plus the chunks produced


async def test_a_failover_counts_one_request_against_the_key(upstream, gateway) -> None:
    bad, good = await upstream("openai"), await upstream("openai")
    for _ in range(3):
        bad.then(Action(status=500))
    snap = snapshot([provider("ns/bad", "openai", bad.url), provider("ns/good", "openai", good.url, priority=1)],
                    [key("ns/team-a", limits=ir.RateLimits(rpm=2))])
    server = await gateway(snap)
    client = _client(server)
    for _ in range(2):  # each one fails over from ns/bad to ns/good
        await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert len(bad.received) == 2 and len(good.received) == 2
    usage = await _usage(server)
    assert usage["requests"] == 2 and usage["tokens"] == 36  # two answers of 11 + 7 tokens


async def test_without_max_tokens_the_reservation_yields_to_a_small_tpm(upstream, gateway) -> None:
    fake = await upstream("openai")
    snap = snapshot([provider("ns/openai", "openai", fake.url)], [key("ns/team-a", limits=ir.RateLimits(tpm=1000))])
    server = await gateway(snap)
    client = _client(server)
    answer = await client.chat.completions.create(model="gpt-4o", messages=LONG)  # ~250 + 4096 > 1000
    assert answer.usage is not None and answer.usage.total_tokens == 18
    with pytest.raises(openai.RateLimitError) as error:  # a max_tokens the client asked for is honoured
        await client.chat.completions.create(model="gpt-4o", messages=LONG, max_tokens=900)
    assert "Request too large" in error.value.message
    assert (await _usage(server))["tokens"] == 18


async def test_the_default_output_reservation_is_a_proxy_setting(upstream) -> None:
    fake = await upstream("openai")
    quota = RecordingQuota()
    proxy = ProxyServer(StaticSource(snapshot([provider("ns/openai", "openai", fake.url)])),
                        ProxySettings(port=0, admin_port=0, access_log=None, default_output_reservation=50),
                        quota=quota)
    await proxy.start()
    try:
        await proxy.wait_ready()
        body = {"model": "gpt-4o", "messages": LONG}
        await _client(proxy).chat.completions.create(model="gpt-4o", messages=LONG)  # type: ignore[arg-type]
        prompt = len(orjson.dumps(body)) // 4
        assert abs(quota.admitted[-1].estimated_tokens - (prompt + 50)) <= 5  # the SDK's JSON may differ a little
    finally:
        await proxy.stop()
