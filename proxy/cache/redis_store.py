"""The shared store: entries as Redis strings with a PX TTL, each Route's similarity index a capped list.

Every replica reads and writes the same keys, so an answer stored by one is a
hit on all. Failures (Redis away, slow) raise `StoreUnavailable`: the request
goes on uncached, it never fails for the cache.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from lockgate.proxy.cache.store import StoreUnavailable

PURGE_BATCH = 500


class RedisCacheStore:
    shared = True

    def __init__(self, url: str, timeout: float = 0.1, connect_timeout: float = 0.2, max_connections: int = 16,
                 ca_file: str | None = None) -> None:
        tls: dict[str, Any] = {"ssl_ca_certs": ca_file} if ca_file and url.startswith("rediss") else {}
        pool = redis.BlockingConnectionPool.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=connect_timeout, max_connections=max_connections,
            timeout=connect_timeout, retry=Retry(NoBackoff(), 0), health_check_interval=0, protocol=2, **tls)
        self.client = redis.Redis(connection_pool=pool)

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self.client.get(key)
        except (RedisError, OSError) as e:
            raise StoreUnavailable(str(e)) from e
        return _bytes(value) if value is not None else None

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        try:
            await self.client.set(key, value, px=max(1, int(ttl * 1000)))
        except (RedisError, OSError) as e:
            raise StoreUnavailable(str(e)) from e

    async def purge(self, pattern: str) -> int:
        dropped = 0
        try:
            batch: list[Any] = []
            async for key in self.client.scan_iter(match=pattern, count=PURGE_BATCH):
                batch.append(key)
                if len(batch) >= PURGE_BATCH:
                    dropped += int(await self.client.unlink(*batch))
                    batch = []
            if batch:
                dropped += int(await self.client.unlink(*batch))
        except (RedisError, OSError) as e:
            raise StoreUnavailable(str(e)) from e
        return dropped

    async def index_add(self, key: str, record: bytes, max_entries: int, ttl: float) -> None:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.lpush(key, record)
                pipe.ltrim(key, 0, max_entries - 1)
                pipe.pexpire(key, max(1, int(ttl * 1000)))
                await pipe.execute()
        except (RedisError, OSError) as e:
            raise StoreUnavailable(str(e)) from e

    async def index_read(self, key: str, max_entries: int) -> list[bytes]:
        try:
            return [_bytes(r) for r in await self.client.lrange(key, 0, max_entries - 1)]
        except (RedisError, OSError) as e:
            raise StoreUnavailable(str(e)) from e

    async def close(self) -> None:
        await self.client.aclose()


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value  # decode_responses is off: always bytes
