"""The cache as the pipeline's cache step sees it: `lookup` before a request goes upstream, `store` once its
answer went out whole, `purge` for the admin API.

A lookup first tries the exact key; a semantic policy then embeds the
question (through the gateway itself, as the gateway's own request) and
searches the Route's index. The store failing (Redis away) never fails a
request: it is a miss, and nothing is stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from lockgate.api.ir import CachePolicy, KeyCache, namespace_of
from lockgate.proxy.cache.entry import Entry
from lockgate.proxy.cache.key import (bypass_reason, cache_control, index_key, owner, purge_patterns,
                                      request_hash, scope_of, store_key)
from lockgate.proxy.cache.memory import MemoryStore
from lockgate.proxy.cache.metrics import CacheMetrics
from lockgate.proxy.cache.record import Recorder
from lockgate.proxy.cache.semantic import SemanticIndex, Vector, encode_record, normalised, partition, question
from lockgate.proxy.cache.store import CacheStore, StoreUnavailable

log = logging.getLogger(__name__)

# (namespace, embedding model, text) -> the text's embedding; raises on any failure.
Embed = Callable[[str, str, str], Awaitable[list[float]]]


@dataclass(frozen=True)
class CacheSettings:
    store: str = "memory"  # or a redis:// URL shared by replicas
    memory_bytes: int = 64 * 1024 * 1024  # the in-process store's budget
    store_ca: str | None = None  # CA bundle of a TLS Redis (rediss://)


@dataclass(slots=True)
class Lookup:
    """One request's dealings with the cache (on its context)."""

    status: str  # hit | miss | bypass
    route: str = ""
    model: str = ""
    key: str = ""  # where its answer is (hit) or goes (miss)
    store: bool = False  # a miss whose answer may be stored
    policy: CachePolicy | None = None
    entry: Entry | None = None  # a hit's
    similarity: float | None = None  # a semantic hit's
    part: str = ""  # semantic: the question's partition and vector, indexed with the answer
    vector: Vector | None = None
    recorder: Recorder | None = None  # a stored stream's bytes

    @property
    def namespace(self) -> str:
        return namespace_of(self.route)


class CacheService:
    def __init__(self, store: CacheStore, gateway: str, registry: CollectorRegistry,
                 refresh_seconds: float = 1.0) -> None:
        self.backend = store
        self.index = SemanticIndex(refresh_seconds)
        self.embed: Embed | None = None  # set by the gateway: embeddings through its own pipeline
        memory = store if isinstance(store, MemoryStore) else None
        self.metrics = CacheMetrics(gateway, registry, lambda: (memory.bytes, len(memory), memory.evictions)
                                    if memory is not None else (0, 0, 0))

    async def lookup(self, policy: CachePolicy, override: KeyCache | None, route: str, consumer: str, op: str,
                     model: str, body: Mapping[str, Any], stream: bool, headers: Mapping[str, str]) -> Lookup:
        """The request's cache result: a hit (its entry), a miss (where to store its answer), or a bypass."""
        namespace = namespace_of(route)
        may_read, may_store = cache_control(headers)
        if bypass_reason(policy, override, op, body) is not None or not (may_read or may_store):
            self.metrics.lookup(route, namespace, model, "bypass")
            return Lookup("bypass", route, model)
        shape = "s" if stream else "w"  # a stream and a whole answer are kept apart
        who = owner(scope_of(policy, override), consumer)
        key = store_key(route, who, shape + request_hash(op, model, body))
        found = Lookup("miss", route, model, key, may_store, policy)
        try:
            if may_read:
                entry = await self._get(key)
                if entry is not None:
                    return self._hit(found, entry, None)
            if policy.semantic is not None and op != "embeddings":
                semantic = await self._semantic(found, policy, op, model, body, f"{shape}:{who}:", may_read)
                if semantic is not None:
                    return semantic
        except StoreUnavailable as e:
            log.warning("cache store unavailable, not caching: %s", e)
            found.store = False
        self.metrics.lookup(route, namespace, model, "miss")
        return found

    async def _get(self, key: str) -> Entry | None:
        data = await self.backend.get(key)
        return Entry.decode(data) if data is not None else None

    def _hit(self, found: Lookup, entry: Entry, similarity: float | None) -> Lookup:
        found.status, found.entry, found.store, found.similarity = "hit", entry, False, similarity
        self.metrics.lookup(found.route, found.namespace, found.model, "hit")
        self.metrics.hit(found.route, found.namespace, found.model, entry.input_tokens, entry.output_tokens,
                         similarity)
        return found

    async def _semantic(self, found: Lookup, policy: CachePolicy, op: str, model: str, body: Mapping[str, Any],
                        space: str, may_read: bool) -> Lookup | None:
        semantic = policy.semantic
        assert semantic is not None
        text = question(op, body, semantic.input)
        if not text or self.embed is None:
            return None
        try:
            vector = normalised(await self.embed(found.namespace, semantic.embedding_model, text))
        except Exception as e:  # the embedding model failed: an exact-only request
            log.warning("cache embedding failed, exact match only: %s", type(e).__name__)
            return None
        if vector is None:
            return None
        found.part, found.vector = space + partition(op, model, body, semantic.input), vector  # shape and owner too
        if not may_read:
            return None
        route, limit = found.route, semantic.max_entries
        if self.backend.shared and self.index.stale(route, limit):
            self.index.load(route, limit, await self.backend.index_read(index_key(route), limit))
        nearest = self.index.search(route, limit, found.part, vector)
        if nearest is None or nearest[1] < semantic.threshold:
            return None
        key, similarity = nearest
        entry = await self._get(key)
        if entry is None:
            return None
        found.key = key
        return self._hit(found, entry, similarity)

    async def store(self, found: Lookup, entry: Entry) -> bool:
        """Keep an answer for later requests; False when it is too large or the store is away."""
        policy = found.policy
        assert policy is not None
        data = entry.encode()
        if len(data) > policy.max_entry_bytes:
            return False
        try:
            await self.backend.set(found.key, data, policy.ttl)
            if found.vector is not None and policy.semantic is not None:
                expires = time.time() + policy.ttl
                limit = policy.semantic.max_entries
                self.index.add(found.route, limit, found.part, found.key, expires, found.vector)
                await self.backend.index_add(index_key(found.route), encode_record(found.part, found.key, expires,
                                                                                 found.vector), limit, policy.ttl)
        except StoreUnavailable as e:
            log.warning("cache store unavailable, answer not stored: %s", e)
            return False
        self.metrics.stored(found.route, found.namespace, found.model)
        return True

    async def purge(self, route: str | None = None, namespace: str | None = None,
                    consumer: str | None = None) -> int:
        """Drop the entries of a Route, a namespace or a consumer (within either); how many."""
        entries, indexes = purge_patterns(route, namespace, consumer)
        dropped = await self.backend.purge(entries)
        if indexes is not None:
            await self.backend.purge(indexes)
            self.index.drop(route, namespace)
        return dropped

    async def close(self) -> None:
        await self.backend.close()


def make_cache_service(url: str, gateway: str, registry: CollectorRegistry, memory_bytes: int = 64 * 1024 * 1024,
                       ca_file: str | None = None) -> CacheService:
    """`memory` (this process, LRU within `memory_bytes`) or a redis:// / rediss:// / unix:// URL shared by replicas."""
    if url == "memory":
        store: CacheStore = MemoryStore(memory_bytes)
    else:  # the Redis client loads only for a Redis store
        from lockgate.proxy.cache.redis_store import RedisCacheStore
        store = RedisCacheStore(url, ca_file=ca_file)
    return CacheService(store, gateway, registry)
