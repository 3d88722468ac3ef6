"""The sharded ConfigMap layout: keys spread by a stable hash of their id,
one key changes one shard, decoding reuses the parts that did not change."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lockgate.api import ir
from lockgate.api.config_shards import PartsInFlight, shard_name, shard_of
from lockgate.api.configmap import INDEX_KEY, PartCache, ShardMemo, belongs_to, decode, encode

CREDS = ir.Credentials(values={"provider/ns/p": "sk-secret-value"})
PROVIDER = ir.Provider(id="ns/p", type="openai", base_url="https://api.example.com/v1", credential="provider/ns/p",
                       models=(ir.ProviderModel(name="m1", upstream_model="m1"),))


def key(i: int) -> ir.ConsumerKey:
    return ir.ConsumerKey(id=f"ns/k{i:05d}", consumer=f"c{i}", hashes=(ir.ApiKeyHash(sha256=f"{i:064x}"),))


def config(keys: int, *extra: ir.ConsumerKey) -> ir.GatewayConfig:
    all_keys = sorted([*(key(i) for i in range(keys)), *extra], key=lambda k: k.id)
    return ir.GatewayConfig(providers=(PROVIDER,), keys=tuple(all_keys)).with_hash()


def split(objects: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    return [o for o in objects if o["kind"] == "ConfigMap"], next(o for o in objects if o["kind"] == "Secret")


def by_name(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects}


def test_many_keys_are_sharded_and_round_trip() -> None:
    cfg = config(300)
    maps, secret = split(encode(cfg, CREDS, "gw", "cfg", key_shards=8))
    names = [m["metadata"]["name"] for m in maps]
    assert names == ["cfg", "cfg-1", *(shard_name("cfg", s) for s in range(8))]
    assert all(belongs_to(n, "cfg") for n in names)
    assert decode(list(reversed(maps)), secret) == (cfg, CREDS)


def test_few_keys_keep_the_single_object_layout() -> None:
    maps, _ = split(encode(config(10), CREDS, "gw", "cfg"))
    assert [m["metadata"]["name"] for m in maps] == ["cfg"] and "config.json" in maps[0]["data"]


def test_shard_of_a_key_is_stable_and_spread() -> None:
    assert shard_of("ns/a", 32) == shard_of("ns/a", 32)
    counts = [0] * 8
    for i in range(800):
        counts[shard_of(f"ns/k{i}", 8)] += 1
    assert min(counts) > 50  # roughly even: 100 expected per shard


def test_adding_one_key_changes_one_shard_and_the_head() -> None:
    before = by_name(encode(config(300), CREDS, "gw", "cfg", key_shards=8))
    new = ir.ConsumerKey(id="ns/new", consumer="new", hashes=(ir.ApiKeyHash(sha256="f" * 64),))
    after = by_name(encode(config(300, new), CREDS, "gw", "cfg", key_shards=8))
    changed = sorted(n for n in after if after[n] != before[n] and after[n]["kind"] == "ConfigMap")
    assert changed == ["cfg", shard_name("cfg", shard_of("ns/new", 8))]


def test_decoding_reuses_the_unchanged_parts() -> None:
    cache = PartCache()
    maps, secret = split(encode(config(300), CREDS, "gw", "cfg", key_shards=8))
    decode(maps, secret, cache)
    assert cache.decoded == 9  # the base and 8 shards
    new = ir.ConsumerKey(id="ns/new", consumer="new", hashes=(ir.ApiKeyHash(sha256="f" * 64),))
    cfg = config(300, new)
    maps, secret = split(encode(cfg, CREDS, "gw", "cfg", key_shards=8))
    assert decode(maps, secret, cache)[0] == cfg
    assert cache.decoded == 10  # only the shard the new key went to
    assert len(cache.shards) == 8 and len(cache.bases) == 1  # the replaced shard is forgotten


def test_a_part_from_another_publication_is_in_flight() -> None:
    old = by_name(encode(config(300), CREDS, "gw", "cfg", key_shards=8))
    new_key = ir.ConsumerKey(id="ns/new", consumer="new", hashes=(ir.ApiKeyHash(sha256="f" * 64),))
    new = by_name(encode(config(300, new_key), CREDS, "gw", "cfg", key_shards=8))
    mixed = {**old, "cfg": new["cfg"]}  # the head arrived before its shard
    maps, secret = split(list(mixed.values()))
    with pytest.raises(PartsInFlight):
        decode(maps, secret)
    maps, secret = split([o for n, o in new.items() if n != shard_name("cfg", 3)])
    with pytest.raises(ValueError, match="missing"):
        decode(maps, secret)


def test_tampered_shard_does_not_match_its_hash() -> None:
    objects = by_name(encode(config(300), CREDS, "gw", "cfg", key_shards=8))
    name = shard_name("cfg", 0)
    forged = copy.deepcopy(objects)
    forged[name]["binaryData"] = objects[shard_name("cfg", 1)]["binaryData"]
    maps, secret = split(list(forged.values()))
    with pytest.raises(ValueError, match="does not match its hash"):
        decode(maps, secret)
    assert INDEX_KEY in objects["cfg"]["data"]


def test_a_memo_encodes_only_the_changed_shard_and_changes_nothing() -> None:
    memo = ShardMemo()
    first = encode(config(300), CREDS, "gw", "cfg", key_shards=8, memo=memo)
    assert memo.encoded == 8
    new = ir.ConsumerKey(id="ns/new", consumer="new", hashes=(ir.ApiKeyHash(sha256="f" * 64),))
    second = encode(config(300, new), CREDS, "gw", "cfg", key_shards=8, memo=memo)
    assert memo.encoded == 9
    assert second == encode(config(300, new), CREDS, "gw", "cfg", key_shards=8)  # as without a memo
    changed = [b["metadata"]["name"] for a, b in zip(first, second, strict=True) if a != b and b["kind"] == "ConfigMap"]
    assert changed == ["cfg", shard_name("cfg", shard_of("ns/new", 8))]
