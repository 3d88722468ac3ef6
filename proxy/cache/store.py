"""What a cache store is: bytes by key with a TTL, a bounded similarity index per Route, purges by pattern."""

from __future__ import annotations

from typing import Protocol


class StoreUnavailable(Exception):
    """The store could not answer (Redis away): the request goes on uncached."""


class CacheStore(Protocol):
    shared: bool  # entries are seen by every replica (Redis)

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float) -> None: ...

    async def purge(self, pattern: str) -> int:
        """Drop every key matching the glob pattern; how many were dropped."""
        ...

    async def index_add(self, key: str, record: bytes, max_entries: int, ttl: float) -> None:
        """Append a record to a Route's similarity index (the oldest go past max_entries)."""
        ...

    async def index_read(self, key: str, max_entries: int) -> list[bytes]:
        """A Route's index records, newest first."""
        ...

    async def close(self) -> None: ...
