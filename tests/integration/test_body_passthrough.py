"""A request body nothing changes goes upstream as the client's own bytes; any change re-serialises it."""

from __future__ import annotations

import json

import aiohttp
import openai

from lockgate.api import ir
from tests.gatewayconfig import KEY, provider, snapshot
from tests.integration.conftest import base_url

# Spacing, key order and number spellings orjson would not write: the bytes show who wrote them.
ODD = (b'{ "messages" : [ {"role":"user", "content":"hi \\u00e9"} ],\n  "temperature": 1.0E0, '
       b'"model":"gpt-4o", "max_tokens" : 5 }')


async def post(server_url: str, body: bytes) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session:
        async with session.post(server_url + "/chat/completions", data=body,
                                headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}) as r:
            return r.status, await r.json()


async def test_an_unchanged_body_goes_upstream_byte_for_byte(upstream, gateway) -> None:
    fake = await upstream("openai")
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url, [("gpt-4o", "gpt-4o")])]))
    status, answer = await post(base_url(server), ODD)
    assert status == 200, answer
    assert fake.received[-1].raw == ODD
    # The official SDK's request too, and the answer it gets is the upstream's.
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY)
    reply = await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "Hello there, friend."
    assert fake.received[-1].body == {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


async def test_a_changed_body_is_written_anew(upstream, gateway) -> None:
    fake = await upstream("openai")
    renamed = provider("ns/renamed", "openai", fake.url, [("gpt-4o", "gpt-4o-up")])
    status, _ = await post(base_url(await gateway(snapshot([renamed]))), ODD)
    assert status == 200
    sent = fake.received[-1]
    assert sent.raw != ODD and sent.body["model"] == "gpt-4o-up"
    assert sent.body["messages"] == [{"role": "user", "content": "hi \u00e9"}] and sent.body["max_tokens"] == 5

    # compat: a renamed token parameter, a default and a dropped one each change the body
    compat = ir.Compat(max_tokens_param="max_completion_tokens", default_params={"seed": 7}, drop_params=("temperature",))
    fixed = provider("ns/fixed", "openai", fake.url, [("gpt-4o", "gpt-4o")], compat=compat)
    status, _ = await post(base_url(await gateway(snapshot([fixed]))), ODD)
    assert status == 200
    body = fake.received[-1].body
    assert body == {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi \u00e9"}],
                    "max_completion_tokens": 5, "seed": 7}


async def test_the_gateways_own_fields_never_reach_the_upstream(upstream, gateway) -> None:
    fake = await upstream("openai")
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url, [("gpt-4o", "gpt-4o")])]))
    with_preferences = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
                                   "model_preferences": {"costPriority": 1}}).encode()
    status, answer = await post(base_url(server), with_preferences)
    assert status == 200, answer
    assert "model_preferences" not in fake.received[-1].body
    assert b"model_preferences" not in fake.received[-1].raw


async def test_a_stream_asks_for_usage_in_a_new_body_unless_the_client_did(upstream, gateway) -> None:
    fake = await upstream("openai")
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url, [("gpt-4o", "gpt-4o")])]))
    asked = b'{"model":"gpt-4o","stream":true, "stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}'
    plain = b'{"model":"gpt-4o","stream":true, "messages":[{"role":"user","content":"hi"}]}'
    async with aiohttp.ClientSession() as session:
        for body in (asked, plain):
            async with session.post(base_url(server) + "/chat/completions", data=body,
                                    headers={"Authorization": f"Bearer {KEY}"}) as response:
                assert response.status == 200
                text = await response.text()
            assert text.rstrip().endswith("data: [DONE]")
            sent = fake.received[-1]
            assert sent.body["stream_options"] == {"include_usage": True}
            assert (sent.raw == body) is (body is asked)
            # the usage chunk the gateway asked for itself is not passed on
            assert ('"usage": {' in text or '"usage":{' in text) is (body is asked)


async def test_a_body_that_arrives_in_pieces_goes_through_whole(upstream, gateway) -> None:
    fake = await upstream("openai")
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url, [("gpt-4o", "gpt-4o")])]))
    # Larger than one read from the socket (the upstream takes up to 1 MiB): the head is in before the body.
    text = "word " * 120_000
    big = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}, indent=1).encode()
    status, answer = await post(base_url(server), big)
    assert status == 200, answer
    assert fake.received[-1].raw == big
