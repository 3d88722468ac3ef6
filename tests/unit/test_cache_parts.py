"""The response cache's pure parts: the key, what bypasses, entries and their replay, the bytes-bounded
LRU store, the semantic question, partition and index, and the policy's API and translation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import pydantic
import pytest

from lockgate.api import ir
from lockgate.api.route import RouteSpec
from lockgate.operator.translate import translate
from lockgate.proxy.cache.entry import Entry, served, stream_entry, whole_entry
from lockgate.proxy.cache.key import bypass_reason, cache_control, purge_patterns, request_hash
from lockgate.proxy.cache.memory import MemoryStore
from lockgate.proxy.cache.semantic import SemanticIndex, normalised, partition, question
from lockgate.proxy.providers.base import Usage

BODY: dict[str, Any] = {"model": "alias", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}


def test_the_key_ignores_delivery_fields_and_nothing_else() -> None:
    key = request_hash("chat", "gpt-4o", BODY)
    same = {"user": "u", "stream": True, "stream_options": {"include_usage": True}, "metadata": {"a": 1},
            "store": True, "model": "other-alias"}
    assert request_hash("chat", "gpt-4o", {**BODY, **same}) == key
    assert request_hash("chat", "gpt-4o", dict(reversed(list(BODY.items())))) == key  # key order is not meaning
    for change in ({"temperature": 0.0001}, {"seed": 1}, {"response_format": {"type": "json_object"}},
                   {"tools": []}, {"messages": [{"role": "user", "content": "hi!"}]}, {"some_new_param": 1}):
        assert request_hash("chat", "gpt-4o", {**BODY, **change}) != key, change
    assert request_hash("chat", "gpt-4o-mini", BODY) != key
    assert request_hash("completions", "gpt-4o", BODY) != key


def test_what_bypasses_and_what_cache_control_says() -> None:
    policy = ir.CachePolicy(endpoints=("chat", "embeddings"))
    assert bypass_reason(policy, None, "chat", BODY) is None
    assert bypass_reason(policy, None, "chat", {**BODY, "temperature": 0.5}) == "sampled"
    assert bypass_reason(policy, None, "chat", {"messages": []}) == "sampled"  # the providers' default is 1
    assert bypass_reason(policy.model_copy(update={"cache_sampled": True}), None, "chat", {"messages": []}) is None
    assert bypass_reason(policy, None, "embeddings", {"input": "x"}) is None
    assert bypass_reason(policy, None, "responses", BODY) == "endpoint"
    assert bypass_reason(policy, ir.KeyCache(enabled=False), "chat", BODY) == "key"
    assert cache_control({}) == (True, True)
    assert cache_control({"Cache-Control": "no-cache"}) == (False, True)
    assert cache_control({"cache-control": "max-age=0, No-Store"}) == (False, False)


def test_purge_patterns_never_reach_another_route_or_namespace() -> None:
    entries, index = purge_patterns("ns/api", None, None)
    assert (entries, index) == ("lcache:ns/api:*:*", "lcindex:ns/api")
    entries, index = purge_patterns(None, "ns", "bob")
    assert entries.startswith("lcache:ns/*:c-") and index is None


CHAT = orjson.dumps({"id": "chatcmpl-abc", "object": "chat.completion", "created": 1700000000, "model": "m",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "x \"created\": 5"}}],
                     "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}})


def _chunk(**fields: Any) -> bytes:
    return b"data: " + orjson.dumps({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1700000000,
                                     "model": "m", **fields}) + b"\n\n"


STREAM = (_chunk(choices=[{"index": 0, "delta": {"content": "Hel"}}]) +
          _chunk(choices=[{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]) +
          _chunk(choices=[], usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}) +
          b"data: [DONE]\n\n")


def test_a_whole_hit_gets_a_new_id_and_created_and_keeps_the_rest() -> None:
    entry = whole_entry(CHAT, Usage(3, 4, True))
    assert entry is not None and Entry.decode(entry.encode()) == entry
    again = orjson.loads(served(entry, False, "chat"))
    original = orjson.loads(CHAT)
    assert again["id"] != original["id"] and again["id"].startswith("chatcmpl-")
    assert again["created"] != original["created"]
    assert again["choices"] == original["choices"] and again["usage"] == original["usage"]
    spaced = b'{"id": "cmpl-1", "created" : 5, "choices": [{"created": 6}]}'  # spaces, two values: the regex path
    entry = whole_entry(spaced, Usage())
    assert entry is not None and entry.created == -1
    renewed = orjson.loads(served(entry, False, "completions"))
    assert renewed["created"] == renewed["choices"][0]["created"] > 6 and renewed["id"] != "cmpl-1"
    assert whole_entry(b'{"error": {"message": "no"}}', Usage()) is None
    assert whole_entry(b"not json", Usage()) is None


def test_a_stream_replays_with_the_usage_chunk_only_when_asked() -> None:
    entry = stream_entry(STREAM, Usage(3, 2, True))
    assert entry is not None and entry.answer_id == "chatcmpl-s" and entry.usage_chunk
    plain = served(entry, False, "chat")
    assert b'"usage"' not in plain and plain.endswith(b"data: [DONE]\n\n") and b"chatcmpl-s\"" not in plain
    with_usage = [block for block in served(entry, True, "chat").split(b"\n\n") if block]
    assert orjson.loads(with_usage[-2][6:])["usage"]["completion_tokens"] == 2 and with_usage[-1] == b"data: [DONE]"
    ids = {orjson.loads(b[6:])["id"] for b in with_usage[:-1]}
    assert len(ids) == 1 and ids != {"chatcmpl-s"}  # one new id for the whole stream

    no_usage = stream_entry(STREAM.replace(_chunk(choices=[], usage={"prompt_tokens": 3, "completion_tokens": 2,
                                                                     "total_tokens": 5}), b""), Usage(3, 2, False))
    assert no_usage is not None and not no_usage.usage_chunk
    made = [b for b in served(no_usage, True, "chat").split(b"\n\n") if b][-2]
    assert orjson.loads(made[6:])["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_a_stream_that_did_not_finish_is_no_entry() -> None:
    assert stream_entry(STREAM.removesuffix(b"data: [DONE]\n\n"), Usage()) is None
    assert stream_entry(b"", Usage()) is None
    responses = b'event: response.completed\ndata: {"type":"response.completed","response":{"id":"resp_1"}}\n\n'
    entry = stream_entry(b'data: {"type":"response.created"}\n\n' + responses, Usage())
    assert entry is not None and entry.answer_id == "resp_1"


def test_the_memory_store_drops_the_least_recently_used_past_its_bytes() -> None:
    async def scenario() -> None:
        store = MemoryStore(max_bytes=3 * (len("k0") + 100 + 200))
        for name in ("k0", "k1", "k2"):
            await store.set(name, b"x" * 100, 60)
        assert await store.get("k0") is not None  # k0 is now the most recently used
        await store.set("k3", b"x" * 100, 60)
        assert await store.get("k1") is None and await store.get("k0") is not None
        assert store.evictions == 1 and len(store) == 3 and store.bytes <= store.max_bytes
        await store.set("huge", b"x" * store.max_bytes, 60)  # larger than the whole budget: not kept
        assert await store.get("huge") is None and len(store) == 3
        assert await store.purge("k*") == 3 and store.bytes == 0
        await store.set("short", b"x", 0)
        assert await store.get("short") is None and store.bytes == 0  # expired, and dropped

    asyncio.run(scenario())


def test_the_semantic_question_and_partition() -> None:
    chat = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "first"},
                         {"role": "assistant", "content": "ok"},
                         {"role": "user", "content": [{"type": "text", "text": "second"}]}], "temperature": 0}
    assert question("chat", chat, "lastUserMessage") == "second"
    assert question("chat", chat, "conversation") == "user: first\nassistant: ok\nuser: second"
    assert question("completions", {"prompt": "p"}, "lastUserMessage") == "p"
    assert question("responses", {"input": "r"}, "lastUserMessage") == "r"
    base = partition("chat", "m", chat, "lastUserMessage")
    other_question = {**chat, "messages": [chat["messages"][0], {"role": "user", "content": "else"}]}
    assert partition("chat", "m", other_question, "lastUserMessage") == base
    other_system = {**chat, "messages": [{"role": "system", "content": "Be long."}, *chat["messages"][1:]]}
    for other in (partition("chat", "m2", chat, "lastUserMessage"), partition("chat", "m", other_system, "x"),
                  partition("chat", "m", {**chat, "temperature": 0.1}, "lastUserMessage")):
        assert other != base


def test_the_semantic_index_finds_the_nearest_above_and_stays_bounded() -> None:
    index = SemanticIndex()
    near, far = normalised([1.0, 0.1, 0.0]), normalised([0.0, 0.0, 1.0])
    assert near is not None and far is not None and normalised([0.0, 0.0]) is None
    index.add("ns/api", 2, "p", "k-near", 4e9, near)
    index.add("ns/api", 2, "p", "k-far", 4e9, far)
    probe = normalised([1.0, 0.0, 0.0])
    assert probe is not None
    found = index.search("ns/api", 2, "p", probe)
    assert found is not None and found[0] == "k-near" and 0.99 < found[1] <= 1.0
    assert index.search("ns/api", 2, "other", probe) is None
    assert index.search("ns/other", 2, "p", probe) is None
    index.add("ns/api", 2, "p", "k-third", 4e9, far)  # past max_entries: the oldest goes
    assert len(index) == 2 and index.search("ns/api", 2, "p", probe)[0] != "k-near"  # type: ignore[index]
    index.add("ns/api", 2, "p", "k-old", 1.0, probe)  # expired
    assert index.search("ns/api", 2, "p", probe)[0] != "k-old"  # type: ignore[index]
    index.drop(None, "ns")
    assert len(index) == 0


def test_the_policy_in_the_api_and_its_translation() -> None:
    with pytest.raises(pydantic.ValidationError, match="semantic"):
        RouteSpec.model_validate({"type": "openai", "cache": {"mode": "semantic"}})
    with pytest.raises(pydantic.ValidationError, match="only for type openai"):
        RouteSpec.model_validate({"type": "chatTemplate", "path": "/x", "cache": {},
                                  "chatTemplate": {"model": "m", "promptTemplate": "t"}})
    provider = {"apiVersion": "lockgate.io/v1alpha1", "kind": "ModelProvider", "metadata": {"name": "p", "namespace": "ns"},
                "spec": {"type": "openai-compatible", "endpoint": "http://127.0.0.1:1/v1",
                         "models": [{"name": "gpt-4o"}, {"name": "embed", "kind": "embedding"}]}}

    def route(name: str, cache: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "lockgate.io/v1alpha1", "kind": "Route", "metadata": {"name": name, "namespace": "ns"},
                "spec": {"type": "openai", "hosts": [f"{name}.example.com"], "cache": cache}}

    good = route("good", {"mode": "semantic", "ttl": "1m", "scope": "consumer",
                          "semantic": {"embeddingModel": "embed", "threshold": 0.9}})
    bad = route("bad", {"mode": "semantic", "semantic": {"embeddingModel": "missing"}})
    result = translate([provider, good, bad], datetime(2026, 1, 1, tzinfo=UTC))
    (accepted,) = result.config.routes
    assert accepted.cache == ir.CachePolicy(mode="semantic", ttl=60.0, scope="consumer",
                                            semantic=ir.SemanticCache(embedding_model="embed", threshold=0.9))
    rejected = next(s for ref, s in result.statuses.items() if "bad" in str(ref))
    assert not rejected.accepted and "missing" in str(rejected.conditions)
