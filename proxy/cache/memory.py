"""The in-process store: entries by key, least recently used dropped first past a byte budget, TTLs checked on read."""

from __future__ import annotations

import fnmatch
import time
from collections import OrderedDict

ENTRY_OVERHEAD = 200  # bytes a stored entry costs besides its key and value (the dict slot, tuple, objects)


class MemoryStore:
    shared = False

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evictions = 0
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _cost(key: str, value: bytes) -> int:
        return len(key) + len(value) + ENTRY_OVERHEAD

    async def get(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, value = found
        if expires <= time.monotonic():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        cost = self._cost(key, value)
        if cost > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (time.monotonic() + ttl, value)
        self.bytes += cost
        while self.bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.evictions += 1

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self.bytes -= self._cost(key, value)

    async def purge(self, pattern: str) -> int:
        dropped = 0
        for key in [k for k in self._entries if fnmatch.fnmatchcase(k, pattern)]:
            self._drop(key)
            dropped += 1
        return dropped

    async def index_add(self, key: str, record: bytes, max_entries: int, ttl: float) -> None:
        return None  # one process: its similarity index is the only one

    async def index_read(self, key: str, max_entries: int) -> list[bytes]:
        return []

    async def close(self) -> None:
        self._entries.clear()
