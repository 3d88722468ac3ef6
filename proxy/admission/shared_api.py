"""What the slots need of a semaphore shared by replicas, without loading a Redis client
(a proxy without Redis never imports one)."""

from __future__ import annotations

from typing import Protocol

PREFIX = "lockgate:slots"


class SharedUnavailable(Exception):
    """The shared store did not answer."""


def slot_key(provider_id: str, url: str) -> str:
    """The endpoint's set; the hash tag keeps a provider's endpoints in one Redis Cluster slot."""
    return f"{PREFIX}:{{{provider_id}}}:{url}"


class SharedSemaphore(Protocol):
    async def acquire(self, key: str, lease_id: str, limit: int) -> bool:
        """Whether a slot of `key` was taken (under `limit` across replicas) as `lease_id`."""
        ...

    def release(self, key: str, lease_id: str) -> None:
        """Give a slot back (in the background)."""
        ...

    async def close(self) -> None: ...
