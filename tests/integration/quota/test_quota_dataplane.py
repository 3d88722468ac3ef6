"""The data plane's use of quotas, in process: an interrupted stream settles
what it produced, an over-budget key gets OpenAI's insufficient_quota."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from lockgate.api.ir import RateLimits
from tests.gatewayconfig import KEY, key, provider, snapshot
from tests.integration.conftest import base_url
from tests.upstreams import Action

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


async def test_an_interrupted_stream_settles_what_was_produced(upstream, gateway) -> None:  # type: ignore[no-untyped-def]
    fake = await upstream("openai")
    fake.then(Action(chunks=["a", "b", "c", "d", "e"], break_after=2))
    team = key("ns/team-a", limits=RateLimits(tpm=100_000, monthly_tokens=100_000))
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url)], [team]))
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
    received = []
    with pytest.raises(openai.APIError):
        stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                      max_tokens=1000)
        async for chunk in stream:
            received.append(chunk)
    usage = (await server.gateway.quota.usage([team]))[team.id]
    # the 1000+ reserved tokens went back; what the two chunks cost stayed
    assert 0 < usage["tokens"] < 100  # type: ignore[operator]
    assert usage["requests"] == 1
    assert usage["window"]["tokens"] == usage["tokens"]  # type: ignore[index]


async def test_over_budget_is_openai_insufficient_quota(upstream, gateway) -> None:  # type: ignore[no-untyped-def]
    fake = await upstream("openai")
    team = key("ns/team-a", limits=RateLimits(monthly_tokens=1500))
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url)], [team]))
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
    await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=1000)
    with pytest.raises(openai.RateLimitError) as refused:
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=1490)
    assert refused.value.code == "insufficient_quota"
    assert int(refused.value.response.headers["retry-after"]) > 0
    assert len(fake.received) == 1  # refused before reaching the upstream
