"""The quota store shared by replicas: Redis, one round trip per check.

Every call is a Lua script sent with EVALSHA (loaded on NOSCRIPT) so a check
and its reservation are one atomic step. Keys carry the group's hash tag
("{key:ns/name}") so Redis Cluster keeps a group in one slot. Window keys
expire a second after their window; month counters after the month ends.
Calls time out in tens of milliseconds and raise StoreUnavailable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lockgate.proxy.quota import lua
from lockgate.proxy.quota.plan import Group, GroupResult, Refusal
from lockgate.proxy.quota.store import StoreUnavailable
from lockgate.proxy.quota.window import TOO_LARGE, WindowState

PREFIX = "lockgate:q"
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
                 max_connections: int = 16) -> None:
        self.window = window
        # A small pool that callers queue for: a burst reuses a few warm connections instead of
        # opening one each (connection storms time out on a busy host). Query parameters of
        # the URL (socket_timeout=...) override these defaults.
        pool = redis.BlockingConnectionPool.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=connect_timeout, max_connections=max_connections,
            timeout=connect_timeout, retry=Retry(NoBackoff(), 0), health_check_interval=0)
        self.client = redis.Redis(connection_pool=pool)

    async def _run(self, calls: list[tuple[_Script, list[str], list[Any]]]) -> list[Any]:
        """Run scripts in one round trip (a pipeline, not a transaction: groups are independent)."""
        try:
            try:
                return await self._send(calls)
            except NoScriptError:
                for script in {c[0] for c in calls}:
                    await self.client.script_load(script.source)
                return await self._send(calls)
        except (RedisError, OSError) as e:
            raise StoreUnavailable(str(e), isinstance(e, (TimeoutError, RedisTimeoutError))) from e

    async def _send(self, calls: list[tuple[_Script, list[str], list[Any]]]) -> list[Any]:
        if len(calls) == 1:
            script, keys, args = calls[0]
            return [await self.client.evalsha(script.sha, len(keys), *keys, *args)]
        async with self.client.pipeline(transaction=False) as pipe:
            for script, keys, args in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            return await pipe.execute()

    async def reserve(self, groups: Sequence[Group], rid: str, cost: int, month: str,
                      month_end: float) -> list[GroupResult]:
        calls = []
        for g in groups:
            keys = window_keys(g) + ([month_key(g, month)] if g.budgets else [])
            args: list[Any] = [int(self.window * 1000), rid, cost, int(month_end) + MONTH_GRACE, len(g.windows)]
            for w in g.windows:
                args += [_limit(w.rpm), _limit(w.tpm)]
            args.append(len(g.budgets))
            for b in g.budgets:
                args += [b.field, _limit(b.limit)]
            calls.append((RESERVE, keys, args))
        replies = await self._run(calls)
        return [self._result(g, r) for g, r in zip(groups, replies)]

    def _result(self, group: Group, reply: list[int]) -> GroupResult:
        if reply[0] == 0:
            _, reason, wait_ms, index = reply
            name = group.budgets[index - 1].field if reason == 3 else group.windows[index - 1].name
            wait = TOO_LARGE if wait_ms < 0 else wait_ms / 1000
            return GroupResult(Refusal(REASONS[reason], wait, name))  # type: ignore[arg-type]
        states = []
        for i, w in enumerate(group.windows):
            count, total, reset = reply[1 + 3 * i: 4 + 3 * i]
            states.append(WindowState(w.rpm, w.tpm, count, total, reset / 1000, reset / 1000))
        used = reply[1 + 3 * len(group.windows):]
        return GroupResult(None, tuple(states), {b.field: int(u) for b, u in zip(group.budgets, used)})

    async def settle(self, groups: Sequence[Group], rid: str, month: str, month_end: float,
                     delta: int, used: int, release: bool) -> None:
        calls = []
        for g in groups:
            keys = window_keys(g) + ([month_key(g, month)] if g.budgets else [])
            args: list[Any] = [rid, used, delta, int(release), int(month_end) + MONTH_GRACE,
                               len(g.windows), len(g.budgets), *(b.field for b in g.budgets)]
            calls.append((SETTLE, keys, args))
        await self._run(calls)

    async def add_month_usage(self, group: Group, month: str, month_end: float, tokens: int,
                              requests: int) -> None:
        """Fold usage counted elsewhere (while Redis was away) into the month counters."""
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


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v
