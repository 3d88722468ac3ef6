"""The response cache in one proxy, called with the official openai SDK: a repeated request is answered
without reaching the loopback upstream (whole and streamed), what must miss misses, what must not be
stored is not, TTLs and purges hold, and the semantic cache answers a paraphrase but not another question."""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import Any

import aiohttp
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lockgate.api import ir
from lockgate.proxy.cache import CacheSettings
from lockgate.proxy.server import ProxyServer
from tests.gatewayconfig import KEY, OTHER_KEY, key, provider, snapshot
from tests.integration.conftest import StartGateway, StartUpstream, base_url
from tests.loopback import free_port
from tests.upstreams import Action, FakeUpstream

HI: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]


def route(rid: str, policy: ir.CachePolicy | None = None, hosts: tuple[str, ...] = ("*",)) -> ir.Route:
    return ir.Route(id=rid, type="openai", hosts=hosts, cache=policy or ir.CachePolicy())


async def ask(server: ProxyServer, api_key: str = KEY, headers: dict[str, str] | None = None,
              **params: Any) -> tuple[str, Any]:
    """(x-lockgate-cache, the parsed answer) of one chat completion (stream: the list of chunks)."""
    params = {"model": "gpt-4o", "messages": HI, "temperature": 0, **params}
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=api_key, max_retries=0,
                                default_headers=headers or {})
    try:
        raw = await client.chat.completions.with_raw_response.create(**params)
        answer = raw.parse()
        if params.get("stream"):
            answer = [chunk async for chunk in answer]  # type: ignore[union-attr]
        return raw.headers.get("x-lockgate-cache", ""), answer
    finally:
        await client.close()


async def stored(server: ProxyServer, count: int) -> None:
    """Until the proxy stored `count` answers (a stream is stored just after its last byte went out)."""
    cache = server.gateway.deps.cache
    assert cache is not None
    async with asyncio.timeout(10):
        while sum(c.value for c in cache.metrics.stores.cells.values()) < count:
            await asyncio.sleep(0.01)


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def start(gateway: StartGateway, fake: FakeUpstream, routes: list[ir.Route],
                keys: list[ir.ConsumerKey] | None = None, models: list[tuple[str, str]] | None = None
                ) -> ProxyServer:
    return await gateway(snapshot([provider("ns/p", "openai-compatible", fake.url, models)], keys, routes))


async def test_a_repeated_request_is_answered_from_the_cache(gateway: StartGateway,
                                                             upstream: StartUpstream) -> None:
    fake = await upstream()
    server = await start(gateway, fake, [route("ns/api")])
    first_state, first = await ask(server)
    again_state, again = await ask(server)
    assert (first_state, again_state) == ("miss", "hit")
    assert len(fake.received) == 1
    assert again.choices[0].message.content == first.choices[0].message.content == fake.text
    assert again.id != first.id and again.id.startswith("chatcmpl-")
    assert again.usage.prompt_tokens == first.usage.prompt_tokens == 11
    assert again.usage.completion_tokens == first.usage.completion_tokens == 7

    # A stream is kept apart from a whole answer, stored once it ended, and replayed in the upstream's shape.
    streamed = [await ask(server, stream=True, stream_options={"include_usage": True})]
    await stored(server, 2)
    streamed.append(await ask(server, stream=True, stream_options={"include_usage": True}))
    assert [s for s, _ in streamed] == ["miss", "hit"]
    assert len(fake.received) == 2
    (_, live), (_, replayed) = streamed
    assert text_of(replayed) == text_of(live) == fake.text
    assert len(replayed) == len(live) and replayed[0].id != live[0].id
    assert replayed[-1].choices == [] and replayed[-1].usage.completion_tokens == 7
    state, plain = await ask(server, stream=True)  # not asking for usage: no usage chunk
    assert state == "hit" and all(c.choices for c in plain) and text_of(plain) == fake.text
    assert len(fake.received) == 2


async def test_what_differs_misses(gateway: StartGateway, upstream: StartUpstream) -> None:
    fake = await upstream()
    keys = [key("ns/a", KEY, "team-a"), key("ns/b", OTHER_KEY, "team-b")]
    server = await start(gateway, fake, [route("ns/api", ir.CachePolicy(scope="consumer"))], keys,
                         [("gpt-4o", "gpt-4o-up"), ("gpt-4o-mini", "mini-up")])
    await ask(server)
    variants: list[tuple[str, dict[str, Any]]] = [
        (KEY, {"max_tokens": 5}), (KEY, {"model": "gpt-4o-mini"}), (KEY, {"tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}),
        (KEY, {"messages": [{"role": "user", "content": "Another question"}]}),
        (OTHER_KEY, {}),  # consumer scope: team-b never sees team-a's answer
    ]
    for api_key, params in variants:
        assert (await ask(server, api_key, **params))[0] == "miss", params
    assert len(fake.received) == 1 + len(variants)
    assert (await ask(server, user="someone", metadata={"a": "b"}))[0] == "hit"  # not part of the key
    assert (await ask(server, temperature=0.7))[0] == "bypass"  # sampled answers are not cached by default
    assert (await ask(server, temperature=0.7))[0] == "bypass"
    assert len(fake.received) == 3 + len(variants)  # the two bypasses reached it, the hit did not


async def test_namespaces_never_share_entries(gateway: StartGateway, upstream: StartUpstream) -> None:
    fake = await upstream()
    providers = [provider("one/p", "openai-compatible", fake.url), provider("two/p", "openai-compatible", fake.url)]
    routes = [route("one/api", hosts=("one.localhost",)), route("two/api", hosts=("two.localhost",))]
    keys = [key("one/k", KEY, "team"), key("two/k", OTHER_KEY, "team")]
    server = await gateway(snapshot(providers, keys, routes))
    async with aiohttp.ClientSession() as session:
        async def post(host: str, api_key: str) -> str:
            async with session.post(f"{base_url(server)}/chat/completions", headers={
                    "Host": host, "Authorization": f"Bearer {api_key}"},
                    json={"model": "gpt-4o", "messages": HI, "temperature": 0}) as r:
                assert r.status == 200
                return r.headers["x-lockgate-cache"]

        assert [await post("one.localhost", KEY), await post("two.localhost", OTHER_KEY),
                await post("one.localhost", KEY), await post("two.localhost", OTHER_KEY)] == [
            "miss", "miss", "hit", "hit"]
    assert len(fake.received) == 2


async def test_cache_control_ttl_purge_and_the_keys_override(gateway: StartGateway,
                                                             upstream: StartUpstream) -> None:
    fake = await upstream()
    keys = [key("ns/a", KEY, "team-a"), key("ns/b", OTHER_KEY, "team-b", cache=ir.KeyCache(enabled=False))]
    server = await start(gateway, fake, [route("ns/api", ir.CachePolicy(ttl=0.5))], keys)
    assert (await ask(server, headers={"Cache-Control": "no-store"}))[0] == "bypass"
    assert (await ask(server))[0] == "miss"  # no-store kept nothing
    assert (await ask(server, headers={"Cache-Control": "no-cache"}))[0] == "miss"  # skips the lookup, stores
    assert (await ask(server))[0] == "hit"
    assert (await ask(server, OTHER_KEY))[0] == "bypass"  # the key turned the cache off
    assert len(fake.received) == 4
    await asyncio.sleep(0.6)  # the TTL passes
    assert (await ask(server))[0] == "miss"
    async with aiohttp.ClientSession() as session:
        admin = f"http://127.0.0.1:{server.admin_port}/cache/purge"
        async with session.post(admin) as r:
            assert r.status == 400 and "purge" in (await r.json())["error"]["message"]
        async with session.post(admin, params={"route": "ns/api"}) as r:
            assert r.status == 200 and (await r.json()) == {"purged": 1}
    assert (await ask(server))[0] == "miss"
    assert len(fake.received) == 6


async def test_failed_or_cut_answers_are_never_stored(gateway: StartGateway, upstream: StartUpstream) -> None:
    fake = await upstream()
    server = await start(gateway, fake, [route("ns/api")])
    fake.then(Action(status=500))
    with pytest.raises(openai.APIStatusError):
        await ask(server)
    fake.then(Action(status=400))
    with pytest.raises(openai.BadRequestError):
        await ask(server)
    fake.then(Action(break_after=2))  # the upstream drops the stream mid-way
    with pytest.raises(openai.APIError):
        await ask(server, stream=True)
    assert (await ask(server))[0] == "miss"
    assert (await ask(server, stream=True))[0] == "miss"
    assert len(fake.received) == 5


async def test_a_client_leaving_mid_stream_stores_nothing(gateway: StartGateway, upstream: StartUpstream) -> None:
    fake = await upstream()
    server = await start(gateway, fake, [route("ns/api")])
    fake.then(Action(chunk_delay=0.05))
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base_url(server)}/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                                json={"model": "gpt-4o", "messages": HI, "temperature": 0, "stream": True}) as r:
            await r.content.readline()  # the first event, then the client goes away
    await asyncio.wait_for(fake.stream_cancelled.wait(), 5)
    assert (await ask(server, stream=True))[0] == "miss"


WORDS = ("capital", "france", "city", "population", "germany", "weather", "paris")


def bag_of_words(text: str) -> list[float]:
    """A deterministic embedding: counts of a few content words (a paraphrase shares most of them)."""
    tokens = re.findall(r"[a-z]+", text.lower())
    return [float(tokens.count(w)) for w in WORDS] + [1e-3 * (int(hashlib.sha256(text.encode()).hexdigest(), 16) % 7)]


async def test_semantic_cache_answers_a_paraphrase_and_refuses_another_question(
        gateway: StartGateway, upstream: StartUpstream) -> None:
    chat = await upstream(name="chat")
    embedder = await upstream(name="embedder", embed=bag_of_words)
    providers = [provider("ns/chat", "openai-compatible", chat.url),
                 provider("ns/emb", "openai-compatible", embedder.url, [("embed", "embed-up")])]
    policy = ir.CachePolicy(mode="semantic", semantic=ir.SemanticCache(embedding_model="embed", threshold=0.8))
    server = await gateway(snapshot(providers, None, [route("ns/api", policy)]))
    assert (await ask(server))[0] == "miss"
    state, answer = await ask(server, messages=[{"role": "user", "content": "what's the capital city of France"}])
    assert state == "hit" and answer.choices[0].message.content == chat.text
    assert (await ask(server, messages=[{"role": "user", "content": "What is the population of Germany?"}]))[0] \
        == "miss"
    system = [{"role": "system", "content": "Answer in French."}, *HI]
    assert (await ask(server, messages=system))[0] == "miss"  # another system prompt: another partition
    assert len(chat.received) == 3
    assert len(embedder.received) == 4 and embedder.received[0].body["model"] == "embed-up"

    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{server.admin_port}/metrics") as r:
            exposition = await r.text()
        async with session.get(f"http://127.0.0.1:{server.admin_port}/usage") as r:
            usage = await r.json()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(exposition) for s in f.samples}
    labels = (("gateway", "lockgate"), ("model", "gpt-4o"), ("namespace", "ns"), ("route", "ns/api"))
    assert samples[("lockgate_cache_lookups_total", tuple(sorted(labels + (("result", "hit"),))))] == 1
    assert samples[("lockgate_cache_lookups_total", tuple(sorted(labels + (("result", "miss"),))))] == 3
    assert samples[("lockgate_cache_stores_total", labels)] == 3
    assert samples[("lockgate_cache_tokens_saved_total", tuple(sorted(labels + (("token_type", "output"),))))] == 7
    assert samples[("lockgate_cache_similarity_count", labels)] == 1
    embeds = [v for (name, lab), v in samples.items() if name == "lockgate_requests_total"
              and dict(lab).get("consumer") == "lockgate-cache"]
    assert sum(embeds) == 4  # the embeddings are the gateway's own requests, not the consumer's
    assert usage["ns/team-a"]["tokens"] == 3 * (11 + 7)  # three upstream answers; the hit spent no tokens


async def test_hits_count_requests_and_spend_tokens_only_when_told(gateway: StartGateway,
                                                                   upstream: StartUpstream) -> None:
    fake = await upstream()
    keys = [key("ns/a", KEY, "team-a", limits=ir.RateLimits(rpm=3)),
            key("ns/b", OTHER_KEY, "team-b", limits=ir.RateLimits(tpm=40))]
    server = await gateway(snapshot([provider("ns/p", "openai-compatible", fake.url)], keys, [
        route("ns/api", ir.CachePolicy(hits_spend_tokens=True), hosts=("spend.localhost",)),
        route("ns/free", hosts=("*",))]))
    assert [(await ask(server))[0] for _ in range(3)] == ["miss", "hit", "hit"]
    with pytest.raises(openai.RateLimitError) as refused:
        await ask(server)  # the key's rpm counts hits as requests
    assert refused.value.response.headers["x-lockgate-cache"] == "hit"
    assert len(fake.received) == 1

    async with aiohttp.ClientSession() as session:
        async def post() -> tuple[int, str]:
            async with session.post(f"{base_url(server)}/chat/completions", json={
                    "model": "gpt-4o", "messages": HI, "temperature": 0, "max_tokens": 1}, headers={
                    "Host": "spend.localhost", "Authorization": f"Bearer {OTHER_KEY}"}) as r:
                return r.status, r.headers.get("x-lockgate-cache", "")

        # 11 + 7 tokens per answer against a tpm of 40: the first hit spends them too, the second is refused.
        assert [await post() for _ in range(3)] == [(200, "miss"), (200, "hit"), (429, "hit")]
    assert len(fake.received) == 2


async def test_embeddings_and_responses_are_cached(gateway: StartGateway, upstream: StartUpstream) -> None:
    fake = await upstream()
    server = await start(gateway, fake, [route("ns/api")], models=[("gpt-4o", "gpt-4o-up"), ("embed", "embed-up")])
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
    try:
        states = []
        for _ in range(2):
            raw = await client.embeddings.with_raw_response.create(model="embed", input="some text")
            states.append(raw.headers["x-lockgate-cache"])
            assert raw.parse().data[0].embedding == [0.1, 0.2, 0.3]
        answers = []
        for _ in range(2):
            raw = await client.responses.with_raw_response.create(model="gpt-4o", input="hi", temperature=0)
            states.append(raw.headers["x-lockgate-cache"])
            answers.append(raw.parse())
    finally:
        await client.close()
    assert states == ["miss", "hit", "miss", "hit"]
    assert answers[1].output_text == answers[0].output_text == fake.text and answers[1].id != answers[0].id
    assert len(fake.received) == 2


async def test_an_unreachable_cache_store_never_fails_a_request(gateway: StartGateway,
                                                              upstream: StartUpstream) -> None:
    fake = await upstream()
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    server = await gateway(snapshot([provider("ns/p", "openai-compatible", fake.url)], None, [route("ns/api")]),
                           cache=CacheSettings(store=dead))
    for stream in (False, True, False):
        state, answer = await ask(server, stream=stream)
        assert state == "miss" and (text_of(answer) if stream else answer.choices[0].message.content) == fake.text
    assert len(fake.received) == 3
