"""The OpenAI API through Lockgate, driven by the official openai SDK."""

from __future__ import annotations

import asyncio

import aiohttp
import openai
import pytest

from tests.gatewayconfig import KEY, OTHER_KEY, key, provider, snapshot
from tests.integration.conftest import base_url


async def test_models_lists_only_what_the_key_may_use(upstream, gateway) -> None:
    fake = await upstream("openai")
    snap = snapshot([provider("ns/openai", "openai", fake.url, [("gpt-4o", "gpt-4o-up"), ("gpt-4o-mini", "m")])],
                    [key("ns/a", KEY, models=("gpt-4o",))])
    server = await gateway(snap)
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY)
    models = [m.id async for m in client.models.list()]
    assert models == ["gpt-4o"]


async def test_chat_sync_and_async_with_upstream_model_and_credentials(upstream, gateway) -> None:
    fake = await upstream("openai")
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url)]))
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY)
    answer = await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Hello there, friend."
    assert answer.usage is not None and answer.usage.prompt_tokens == 11
    sent = fake.received[-1]
    assert sent.body["model"] == "gpt-4o-up"
    assert sent.headers["Authorization"] == "Bearer secret-of-ns/openai"
    assert sent.headers["Accept-Encoding"] == "identity"  # answers are parsed for usage: never compressed

    def sync_call() -> str | None:
        client = openai.OpenAI(base_url=base_url(server), api_key=KEY)
        return client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
                                              ).choices[0].message.content

    assert await asyncio.to_thread(sync_call) == "Hello there, friend."


async def test_auth_failures(upstream, gateway) -> None:
    fake = await upstream("openai")
    from datetime import datetime, timezone
    snap = snapshot([provider("ns/openai", "openai", fake.url)],
                    [key("ns/a", KEY), key("ns/old", OTHER_KEY, expires_at=datetime(2024, 1, 1, tzinfo=timezone.utc))])
    server = await gateway(snap)
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.AuthenticationError) as unknown:
        await openai.AsyncOpenAI(base_url=base_url(server), api_key="nope").chat.completions.create(
            model="gpt-4o", messages=messages)
    assert unknown.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError) as expired:
        await openai.AsyncOpenAI(base_url=base_url(server), api_key=OTHER_KEY).chat.completions.create(
            model="gpt-4o", messages=messages)
    assert expired.value.code == "expired_api_key"
    async with aiohttp.ClientSession() as session:
        async with session.post(base_url(server) + "/chat/completions", json={}) as response:
            assert response.status == 401
            assert response.headers["x-request-id"]
        for header in ({"x-api-key": KEY}, {"api-key": KEY}):
            async with session.post(base_url(server) + "/chat/completions", headers=header,
                                    json={"model": "gpt-4o", "messages": messages}) as response:
                assert response.status == 200, await response.text()
