"""The sharded layout of a configuration with many ApiKeys.

The keys are spread over a fixed number of shards by a stable hash of their
id, so adding, changing or removing one key changes one shard; everything
but the keys (the base) is its own part. Each part is a ConfigMap whose
annotation holds the SHA-256 of the JSON it carries:

- `<config_map>-<n>`: `binaryData["part"]`, chunks of the gzipped base
  (the config with no keys), all annotated with the base's hash;
- `<config_map>-keys-<nn>`: `binaryData["keys.json.gz"]`, one shard's keys.

The head (`<config_map>`) holds `data["index.json"]`: the configuration's
hash, `"encoding": "shards"`, the parts' names and each part's hash. A reader
takes a part only when its annotation matches the index; a `PartCache` keeps
the decoded parts by (name, hash) so a change re-decodes only what changed.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from lockgate.api.configmap_objects import (
    INDEX_KEY, KEYS_KEY, PART_BYTES, PART_KEY, annotated_hash, b64, config_object, unb64,
)
from lockgate.api.ir import ConsumerKey, GatewayConfig, canonical_json

SHARDED = "shards"
KEY_SHARDS = 32  # fixed: a key's shard never moves while the count stays
SHARD_KEYS_ABOVE = 256  # keys past which the sharded layout is used
_KEYS = TypeAdapter(tuple[ConsumerKey, ...])


class PartsInFlight(ValueError):
    """A part is from another publication than the head's index: one of them is still on its way."""


def shard_of(key_id: str, shards: int = KEY_SHARDS) -> int:
    """The shard of a key id: stable across processes and releases."""
    return int.from_bytes(hashlib.sha256(key_id.encode()).digest()[:8], "big") % shards


def shard_name(config_map: str, shard: int) -> str:
    return f"{config_map}-keys-{shard:02d}"


def _sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


@dataclass
class ShardMemo:
    """What encoding the previous configuration found, for the next one: each
    key's shard, and each shard's keys with its encoded ConfigMap. Keys equal
    to last time's (the translator hands back the same objects) cost nothing."""

    count: int = 0  # the number of shards the memo is for
    shard_of: dict[str, int] = field(default_factory=dict)
    shards: dict[str, tuple[list[ConsumerKey], dict[str, Any]]] = field(default_factory=dict)  # by namespace/name
    encoded: int = 0  # shards encoded (not taken from the memo) so far


def _same(a: list[ConsumerKey], b: list[ConsumerKey]) -> bool:
    return len(a) == len(b) and all(x is y or x == y for x, y in zip(a, b, strict=True))


def _key_shard(name: str, keys: list[ConsumerKey], namespace: str, config_map: str, part_bytes: int,
               memo: ShardMemo) -> dict[str, Any]:
    raw = canonical_json([k.model_dump(mode="json") for k in keys]).encode()
    packed = gzip.compress(raw, mtime=0)
    if len(packed) > part_bytes:
        raise ValueError(f"key shard {name} holds {len(packed)} bytes packed, past {part_bytes}")
    part = config_object("ConfigMap", name, namespace, _sha(raw), config_map)
    part["binaryData"] = {KEYS_KEY: b64(packed)}
    memo.encoded += 1
    return part


def encode_shards(config: GatewayConfig, namespace: str, config_map: str, *, shards: int = KEY_SHARDS,
                  part_bytes: int = PART_BYTES, memo: ShardMemo | None = None) -> list[dict[str, Any]]:
    """The head, then the base's parts, then the key shards (every shard, empty ones too)."""
    memo = memo if memo is not None else ShardMemo()
    if memo.count != shards:
        memo.count, memo.shard_of, memo.shards = shards, {}, {}
    base_raw = canonical_json(config.model_copy(update={"keys": (), "hash": ""}).model_dump(mode="json")).encode()
    base_hash, packed = _sha(base_raw), gzip.compress(base_raw, mtime=0)
    objects: list[dict[str, Any]] = []
    for n, start in enumerate(range(0, max(len(packed), 1), part_bytes), start=1):
        part = config_object("ConfigMap", f"{config_map}-{n}", namespace, base_hash, config_map)
        part["binaryData"] = {PART_KEY: b64(packed[start: start + part_bytes])}
        objects.append(part)
    buckets: list[list[ConsumerKey]] = [[] for _ in range(shards)]
    for key in config.keys:
        shard = memo.shard_of.get(key.id)
        if shard is None:
            shard = memo.shard_of[key.id] = shard_of(key.id, shards)
        buckets[shard].append(key)
    for shard, keys in enumerate(buckets):
        name = shard_name(config_map, shard)
        known = memo.shards.get(f"{namespace}/{name}")
        part = known[1] if known is not None and _same(known[0], keys) else \
            _key_shard(name, keys, namespace, config_map, part_bytes, memo)
        memo.shards[f"{namespace}/{name}"] = (keys, part)
        objects.append(part)
    if len(memo.shard_of) > 2 * len(config.keys) + 1024:  # forget keys long gone
        memo.shard_of = {k.id: memo.shard_of[k.id] for k in config.keys}
    hashes = {o["metadata"]["name"]: annotated_hash(o) for o in objects}
    index = {"hash": config.hash, "encoding": SHARDED, "parts": list(hashes), "hashes": hashes}
    head = config_object("ConfigMap", config_map, namespace, config.hash, config_map)
    head["data"] = {INDEX_KEY: canonical_json(index)}
    return [head, *objects]


@dataclass
class PartCache:
    """Decoded parts by (name, content hash): the base (by its hash) and key shards."""

    bases: dict[str, GatewayConfig] = field(default_factory=dict)
    shards: dict[tuple[str, str], tuple[ConsumerKey, ...]] = field(default_factory=dict)
    decoded: int = 0  # parts decoded (not taken from the cache) so far

    def keep_only(self, names: Iterable[tuple[str, str]], base: str) -> None:
        wanted = set(names)
        self.shards = {k: v for k, v in self.shards.items() if k in wanted}
        self.bases = {k: v for k, v in self.bases.items() if k == base}


def decode_shards(index: dict[str, Any], by_name: dict[str, dict[str, Any]],
                  cache: PartCache | None = None) -> GatewayConfig:
    """The configuration a sharded index names; ValueError when a part is
    missing, from another publication, or does not match its hash."""
    cache = cache if cache is not None else PartCache()
    hashes: dict[str, str] = index["hashes"]
    base_names: list[str] = []
    shard_names: list[str] = []
    for name in index["parts"]:
        part = by_name.get(name)
        if part is None:
            raise ValueError(f"config part {name} is missing")
        if annotated_hash(part) != hashes[name]:
            raise PartsInFlight(f"config part {name} belongs to another publication ({annotated_hash(part)})")
        (shard_names if KEYS_KEY in (part.get("binaryData") or {}) else base_names).append(name)
    base_hashes = {hashes[n] for n in base_names}
    if len(base_hashes) != 1:
        raise ValueError(f"the base parts carry {len(base_hashes)} hashes, not one")
    base_hash = base_hashes.pop()
    base = cache.bases.get(base_hash)
    if base is None:
        raw = gzip.decompress(b"".join(unb64(by_name[n]["binaryData"][PART_KEY]) for n in base_names))
        if _sha(raw) != base_hash:
            raise ValueError(f"the base's content does not match its hash {base_hash}")
        base = cache.bases[base_hash] = GatewayConfig.model_validate_json(raw)
        cache.decoded += 1
    keys: list[ConsumerKey] = []
    for name in shard_names:
        found = cache.shards.get((name, hashes[name]))
        if found is None:
            raw = gzip.decompress(unb64(by_name[name]["binaryData"][KEYS_KEY]))
            if _sha(raw) != hashes[name]:
                raise ValueError(f"config part {name} does not match its hash {hashes[name]}")
            found = cache.shards[(name, hashes[name])] = _KEYS.validate_json(raw)
            cache.decoded += 1
        keys.extend(found)
    cache.keep_only(((n, hashes[n]) for n in shard_names), base_hash)
    keys.sort(key=lambda k: k.id)
    return base.model_copy(update={"keys": tuple(keys), "hash": index["hash"]})
