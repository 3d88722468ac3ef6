"""The quota store shared by replicas: Redis, one round trip per check.

Every call is a Lua script sent with EVALSHA (loaded on NOSCRIPT) so a check
and its reservation are one atomic step. Keys carry the group's hash tag
("{key:ns/name}") so Redis Cluster keeps a group in one slot. Window keys
expire a second after their window; month counters after the month ends.
Calls time out in tens of milliseconds and raise StoreUnavailable.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lockgate.proxy.quota import lua
from lockgate.proxy.quota.plan import Group, GroupResult, Refusal
from lockgate.proxy.quota.store import StoreUnavailable
from lockgate.proxy.quota.window import TOO_LARGE, WindowState

PREFIX = "lockgate:q"
CLUSTER_SCHEMES = {"redis+cluster://": "redis://", "rediss+cluster://": "rediss://"}  # any node of a Redis Cluster
MONTH_GRACE = 86400  # month counters stay readable a day after the month ends
REASONS = {1: "requests", 2: "tokens", 3: "budget"}


def window_keys(group: Group) -> list[str]:
    keys = []
    for w in group.windows:
        base = f"{PREFIX}:{{{group.tag}}}:w:{w.name}"
        keys += [f"{base}:z", f"{base}:h"]
    return keys


def month_key(group: Group, month: str) -> str:
    return f"{PREFIX}:{{{group.tag}}}:m:{month}"


def _limit(v: int | None) -> int:
    return -1 if v is None else v


class _Script:
    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


RESERVE, SETTLE, PEEK = _Script(lua.RESERVE), _Script(lua.SETTLE), _Script(lua.PEEK)


class RedisStore:
    def __init__(self, url: str, window: float = 60.0, timeout: float = 0.05, connect_timeout: float = 0.1,
                 max_connections: int = 16, ca_file: str | None = None) -> None:
        self.window = window
        self._loading = asyncio.Lock()
        self._loads = 0  # times the scripts were loaded (a generation: concurrent NOSCRIPTs load once)
        self.client: Any
        tls: dict[str, Any] = {"ssl_ca_certs": ca_file} if ca_file and url.startswith("rediss") else {}
        scheme = next((s for s in CLUSTER_SCHEMES if url.startswith(s)), None)
        if scheme is not None:  # Redis Cluster: each group's keys share one slot
            self.client = RedisCluster.from_url(
                CLUSTER_SCHEMES[scheme] + url.removeprefix(scheme), socket_timeout=timeout,
                socket_connect_timeout=connect_timeout, max_connections=max_connections * 16,
                retry=Retry(NoBackoff(), 0), protocol=2, **tls)  # its pools do not queue callers: room for bursts
            self.cluster = True
            return
        self.cluster = False
        # A small pool that callers queue for: a burst reuses a few warm connections instead of
        # opening one each (connection storms time out on a busy host). Query parameters of
        # the URL (socket_timeout=...) override these defaults.
        pool = redis.BlockingConnectionPool.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=connect_timeout, max_connections=max_connections,
            timeout=connect_timeout, retry=Retry(NoBackoff(), 0), health_check_interval=0,
            protocol=2, **tls)  # RESP2: a connection is ready after one exchange (no HELLO, no extra handshakes)
        self.client = redis.Redis(connection_pool=pool)

    async def _run(self, calls: list[tuple[_Script, list[str], list[Any]]]) -> list[Any]:
        """Run scripts in one round trip (a pipeline, not a transaction: groups are independent)."""
        try:
            if not self._loads:  # load before the first call, not on a storm of NOSCRIPT replies
                await self._load_scripts(0)
            try:
                return await self._send(calls)
            except NoScriptError:  # a restarted or flushed Redis: load once, however many calls noticed
                await self._load_scripts(self._loads)
                return await self._send(calls)
        except (RedisError, OSError) as e:
            raise StoreUnavailable(str(e), isinstance(e, (TimeoutError, RedisTimeoutError))) from e

    async def _load_scripts(self, seen: int) -> None:
        async with self._loading:
            if self._loads == seen:
                for script in (RESERVE, SETTLE, PEEK):
                    await self.client.script_load(script.source)
                self._loads += 1

    async def _send(self, calls: list[tuple[_Script, list[str], list[Any]]]) -> list[Any]:
        if len(calls) == 1 or self.cluster:
            # A cluster serves each group from its own slot's node: the calls go out together.
            return list(await asyncio.gather(*(self.client.evalsha(script.sha, len(keys), *keys, *args)
                                               for script, keys, args in calls)))
        async with self.client.pipeline(transaction=False) as pipe:
            for script, keys, args in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            return list(await pipe.execute())

    async def reserve(self, groups: Sequence[Group], rid: str, cost: int, month: str,
                      month_end: float, repeat: bool = False, spend: int = 0) -> list[GroupResult]:
        if not self.cluster or len(groups) == 1:
            (reply,) = await self._run([self._reserve_call(groups, rid, cost, month, month_end, repeat, spend)])
            return _results(groups, reply)
        # Redis Cluster: groups live in different slots, so one after the other, undoing on a refusal.
        results: list[GroupResult] = []
        for i, g in enumerate(groups):
            (reply,) = await self._run([self._reserve_call([g], rid, cost, month, month_end, repeat, spend)])
            (result,) = _results([g], reply)
            results.append(result)
            if result.refusal is not None:
                if i:  # a repeat keeps its first admission's count, with no tokens
                    await self.settle(groups[:i], rid, month, month_end, -cost, 0, release=not repeat,
                                      spend_delta=-spend)
                return results + [GroupResult(None)] * (len(groups) - i - 1)
        return results

    def _reserve_call(self, groups: Sequence[Group], rid: str, cost: int, month: str,
                      month_end: float, repeat: bool = False, spend: int = 0) -> tuple[_Script, list[str], list[Any]]:
        keys: list[str] = []
        args: list[Any] = [int(self.window * 1000), rid, cost, int(month_end) + MONTH_GRACE, int(repeat), len(groups),
                           spend]
        for g in groups:
            keys += window_keys(g) + ([month_key(g, month)] if g.budgets else [])
            args += [int(g.unit == "cost"), len(g.windows)]
            for w in g.windows:
                args += [_limit(w.rpm), _limit(w.tpm)]
            args.append(len(g.budgets))
            for b in g.budgets:
                args += [b.field, _limit(b.limit)]
        return RESERVE, keys, args

    async def settle(self, groups: Sequence[Group], rid: str, month: str, month_end: float,
                     delta: int, used: int, release: bool, spend_delta: int = 0) -> None:
        calls = []
        for g in groups:
            keys = window_keys(g) + ([month_key(g, month)] if g.budgets else [])
            args: list[Any] = [rid, used, g.amount(delta, spend_delta), int(release), int(month_end) + MONTH_GRACE,
                               len(g.windows), len(g.budgets), *(b.field for b in g.budgets)]
            calls.append((SETTLE, keys, args))
        await self._run(calls)

    async def add_month_usage(self, group: Group, month: str, month_end: float, tokens: int,
                              requests: int) -> None:
        """Fold usage counted elsewhere (while Redis was away) into the month counters (`tokens`: the
        group's unit, money for a cost group)."""
        key = month_key(group, month)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for b in group.budgets:
                    pipe.hincrby(key, b.field, tokens)
                pipe.hincrby(key, "requests", requests)
                pipe.expireat(key, int(month_end) + MONTH_GRACE)
                await pipe.execute()
        except (RedisError, OSError) as e:
            raise StoreUnavailable(str(e), isinstance(e, (TimeoutError, RedisTimeoutError))) from e

    async def peek(self, group: Group, month: str) -> tuple[dict[str, int], list[WindowState]]:
        keys = window_keys(group) + [month_key(group, month)]
        (reply,) = await self._run([(PEEK, keys, [int(self.window * 1000), len(group.windows)])])
        states = []
        for i, w in enumerate(group.windows):
            count, total, reset = reply[3 * i: 3 * i + 3]
            states.append(WindowState(w.rpm, w.tpm, int(count), int(total), reset / 1000, reset / 1000))
        flat = reply[3 * len(group.windows):]
        counters = {_text(flat[k]): int(flat[k + 1]) for k in range(0, len(flat), 2)}
        return counters, states

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self.client.aclose()


def _results(groups: Sequence[Group], reply: list[int]) -> list[GroupResult]:
    """Per group: its window states and month counters, or the refusal (the other groups then hold nothing)."""
    if reply[0] == 0:
        _, refused, reason, wait_ms, index = reply
        group = groups[refused - 1]
        name = group.budgets[index - 1].field if reason == 3 else group.windows[index - 1].name
        refusal = Refusal(REASONS[reason], TOO_LARGE if wait_ms < 0 else wait_ms / 1000, name)  # type: ignore[arg-type]
        return [GroupResult(refusal if g is group else None) for g in groups]
    results = []
    at = 1
    for g in groups:
        states = []
        for w in g.windows:
            count, total, reset = reply[at: at + 3]
            states.append(WindowState(w.rpm, w.tpm, count, total, reset / 1000, reset / 1000))
            at += 3
        used = reply[at: at + len(g.budgets)]
        at += len(g.budgets)
        results.append(GroupResult(None, tuple(states), {b.field: int(u) for b, u in zip(g.budgets, used)}))
    return results


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v
