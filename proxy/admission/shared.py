"""Endpoint slots shared by proxy replicas: a counting semaphore in Redis with leases.

Each endpoint's slots are a sorted set of lease ids scored by their expiry (Redis'
own clock). Taking a slot drops expired leases and adds one if fewer than the limit
remain, in one script. The replica renews the leases it holds every third of the
lease time, so a replica that dies frees its slots within the lease time and no
slot is lost. A release removes the lease. Calls that fail raise SharedUnavailable:
the caller then counts its own slots only, until Redis answers again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from lockgate.proxy.admission.shared_api import SharedUnavailable

log = logging.getLogger(__name__)

PAUSE = 1.0  # seconds Redis is left alone after a failed call (requests count their own replica's slots meanwhile)
CLUSTER_SCHEMES = {"redis+cluster://": "redis://", "rediss+cluster://": "rediss://"}

# KEYS[1] the endpoint's set; ARGV: limit, lease seconds, lease id. 1 when taken.
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000) + 1000)
return 1
"""

# KEYS[1] the endpoint's set; ARGV: lease seconds, lease ids. Pushes the held leases' expiry on.
RENEW = """
local t = redis.call('TIME')
local until_ = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', until_, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
return 1
"""


class SharedSlots:
    def __init__(self, url: str, lease_seconds: float = 10.0, timeout: float = 0.5,
                 ca_file: str | None = None) -> None:
        self.lease_seconds = lease_seconds
        tls: dict[str, Any] = {"ssl_ca_certs": ca_file} if ca_file and url.startswith("rediss") else {}
        scheme = next((s for s in CLUSTER_SCHEMES if url.startswith(s)), None)
        self.client: Any
        if scheme is not None:
            self.client = RedisCluster.from_url(CLUSTER_SCHEMES[scheme] + url.removeprefix(scheme),
                                                socket_timeout=timeout, socket_connect_timeout=timeout, **tls)
        else:
            self.client = redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, **tls)
        self._take = self.client.register_script(TAKE)
        self._renew = self.client.register_script(RENEW)
        self._held: dict[str, set[str]] = defaultdict(set)  # key -> lease ids this replica holds
        self._background: set[asyncio.Task[None]] = set()
        self._renewer: asyncio.Task[None] | None = None
        self._away = False
        self._retry_at = 0.0  # loop time before which Redis is not asked (it just failed)

    async def acquire(self, key: str, lease_id: str, limit: int) -> bool:
        """Whether a slot of `key` was taken (under `limit` across replicas) as `lease_id`."""
        loop = asyncio.get_running_loop()
        if self._renewer is None or self._renewer.done():
            self._renewer = loop.create_task(self._renew_held())
        if self._away and loop.time() < self._retry_at:
            raise SharedUnavailable
        try:
            taken = bool(await self._take(keys=[key], args=[limit, self.lease_seconds, lease_id]))
        except (RedisError, OSError) as e:
            self._went_away(e)
            raise SharedUnavailable from e
        self._back()
        if taken:
            self._held[key].add(lease_id)
        return taken

    def release(self, key: str, lease_id: str) -> None:
        """Give a slot back (in the background: the request that held it is done)."""
        held = self._held.get(key)
        if held is not None:
            held.discard(lease_id)
            if not held:
                del self._held[key]
        task = asyncio.get_running_loop().create_task(self._remove(key, lease_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _remove(self, key: str, lease_id: str) -> None:
        try:
            await self.client.zrem(key, lease_id)
        except (RedisError, OSError) as e:  # the lease expires by itself
            self._went_away(e)

    async def _renew_held(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            for key, ids in list(self._held.items()):
                if not ids:
                    continue
                try:
                    await self._renew(keys=[key], args=[self.lease_seconds, *ids])
                except (RedisError, OSError) as e:
                    self._went_away(e)
                    break
                else:
                    self._back()

    def _went_away(self, error: BaseException) -> None:
        self._retry_at = asyncio.get_running_loop().time() + PAUSE
        if not self._away:
            self._away = True
            log.warning("shared endpoint slots: Redis does not answer (%s); each replica counts its own slots "
                        "until it does", type(error).__name__)

    def _back(self) -> None:
        if self._away:
            self._away = False
            log.warning("shared endpoint slots: Redis answers again")

    async def close(self) -> None:
        """Stop renewing and give back every slot still held (a replica shutting down)."""
        if self._renewer is not None:
            self._renewer.cancel()
        for key, ids in list(self._held.items()):
            for lease_id in list(ids):
                self.release(key, lease_id)
        if self._background:
            await asyncio.wait(self._background, timeout=2)
        await self.client.aclose()
