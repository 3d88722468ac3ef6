"""The quota store shared by replicas: Redis, one round trip per check.

Every call is a Lua script sent with EVALSHA (loaded on NOSCRIPT) so a check
and its reservation are one atomic step. On one Redis, the reservations of an
event-loop turn go out as one script call and so do its settlements
(redis_batch), and a busy plan admits from leases of capacity (lease.py); on a Redis Cluster,
a call per group and slot. Keys carry the group's hash tag
("{key:ns/name}") so Redis Cluster keeps a group in one slot. Window keys
expire a second after their window; month counters after the month ends.
Calls time out in tens of milliseconds and raise StoreUnavailable.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lockgate.proxy.quota import lua, lua_batch, lua_lease
from lockgate.proxy.quota.lease import Lease, LeaseBook
from lockgate.proxy.quota.plan import Group, GroupResult
from lockgate.proxy.quota.redis_calls import (bulk_strings, lease_command, limits_arguments, reserve_results,
                                             return_command, text)
from lockgate.proxy.quota.redis_batch import MONTH_GRACE, Batches, group_keys, month_key, window_keys
from lockgate.proxy.quota.redis_wire import PipelinedLink, ReplyError, WireError, parse_address
from lockgate.proxy.quota.store import StoreUnavailable
from lockgate.proxy.quota.window import WindowState

CLUSTER_SCHEMES = {"redis+cluster://": "redis://", "rediss+cluster://": "rediss://"}  # any node of a Redis Cluster
SETTLE_RETRIES = (0.05, 0.2, 1.0)  # seconds before each new attempt of a settlement Redis did not answer
MAX_FRAMES = 100_000  # packed call frames kept (plans x months); this only guards memory
FLUSH_TIMEOUT = 3.0  # close() waits this long at most for settlements still on their way
SCRIPTS = (lua.RESERVE, lua.SETTLE, lua.PEEK, lua_batch.RESERVE_MANY, lua_batch.SETTLE_MANY, lua_lease.LEASE,
           lua_lease.RETURN)


class _Script:
    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


@dataclass(slots=True)
class _Call:
    """One EVALSHA; `packed`: its RESP bytes when already packed (what a plan repeats is packed once)."""

    script: _Script
    keys: list[str]
    args: list[Any]
    packed: bytes | None = None


RESERVE, SETTLE, PEEK = _Script(lua.RESERVE), _Script(lua.SETTLE), _Script(lua.PEEK)
LEASE, RETURN = _Script(lua_lease.LEASE), _Script(lua_lease.RETURN)


class RedisStore:
    def __init__(self, url: str, window: float = 60.0, timeout: float = 0.05, connect_timeout: float = 0.1,
                 max_connections: int = 16, ca_file: str | None = None) -> None:
        self.window = window
        self._loading = asyncio.Lock()
        self._loads = 0  # times the scripts were loaded (a generation: concurrent NOSCRIPTs load once)
        self._settling: set[asyncio.Future[Any]] = set()  # settlements sent and not yet answered
        self._drained: asyncio.Event | None = None
        # (script, id(groups), month) -> the groups, keys, static arguments and RESP frames of their calls
        self._frames: dict[tuple[str, int, str], tuple[Sequence[Group], list[str], list[Any], bytes, bytes]] = {}
        self.client: Any = None
        self.link: PipelinedLink | None = None
        self.leases: LeaseBook | None = None  # on one Redis only (a cluster keeps a plan's groups in several slots)
        self.batches: Batches | None = None
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
        # One connection, pipelined: the calls of one event-loop turn share a round trip (redis_wire).
        context = ssl.create_default_context(cafile=ca_file) if url.startswith("rediss") else None
        self.link = PipelinedLink(parse_address(url), timeout, connect_timeout, context)
        self.batches = Batches(self.link, window)
        self.batches.reserves.orphaned = self._orphaned
        self.leases = LeaseBook(self)

    async def _run(self, calls: list[_Call]) -> list[Any]:
        """Run scripts in one round trip (a pipeline, not a transaction: groups are independent)."""
        return await self._loaded(lambda: self._send(calls))  # type: ignore[no-any-return]

    async def _loaded(self, send: Callable[[], Awaitable[Any]]) -> Any:
        """What `send` returns, the scripts loaded first (and again on NOSCRIPT); StoreUnavailable
        when Redis does not answer."""
        try:
            if not self._loads:  # load before the first call, not on a storm of NOSCRIPT replies
                await self._load_scripts(0)
            try:
                return await send()
            except (NoScriptError, ReplyError) as e:
                if not str(e).startswith("NOSCRIPT"):
                    raise
                # a restarted or flushed Redis: load once, however many calls noticed
                await self._load_scripts(self._loads)
                return await send()
        except (RedisError, OSError, WireError, ReplyError) as e:
            raise _unavailable(e) from e

    async def _load_scripts(self, seen: int) -> None:
        async with self._loading:
            if self._loads == seen:
                for source in SCRIPTS:
                    if self.link is not None:
                        await self.link.call("SCRIPT", "LOAD", source)
                    else:
                        await self.client.script_load(source)
                self._loads += 1

    async def _send(self, calls: list[_Call]) -> list[Any]:
        if self.link is not None:
            if len(calls) == 1:
                return [await self._link_call(calls[0])]
            return list(await asyncio.gather(*(self._link_call(c) for c in calls)))
        # A cluster serves each group from its own slot's node: the calls go out together.
        return list(await asyncio.gather(*(self.client.evalsha(c.script.sha, len(c.keys), *c.keys, *c.args)
                                           for c in calls)))

    def _link_call(self, c: _Call) -> asyncio.Future[Any]:
        assert self.link is not None
        if c.packed is not None:
            return self.link.call_packed(c.packed)
        return self.link.call("EVALSHA", c.script.sha, len(c.keys), *c.keys, *c.args)

    def reserve_soon(self, groups: Sequence[Group], rid: str, cost: int, month: str, month_end: float,
                     repeat: bool, spend: int, orphan: Any) -> asyncio.Future[Any] | None:
        """The reservation with the others of this loop turn, its reply as a future for `replied`;
        None before the scripts are loaded (use reserve). A caller that stops waiting for it leaves
        its reply to `orphaned(orphan, results)`."""
        if self.batches is None or not self._loads:
            return None
        if repeat and self.leases is not None:
            self.leases.return_holding(rid)  # Redis holds it before it is admitted again
        return self.batches.reserve(groups, rid, cost, month, month_end, repeat, spend, orphan)

    async def replied(self, sent: asyncio.Future[Any], groups: Sequence[Group], rid: str, cost: int, month: str,
                      month_end: float, repeat: bool, spend: int) -> list[GroupResult]:
        """The results of a `reserve_soon`; StoreUnavailable when Redis did not answer."""
        try:
            return reserve_results(groups, await sent)
        except ReplyError as e:
            if not str(e).startswith("NOSCRIPT"):
                raise _unavailable(e) from e
        except WireError as e:
            raise _unavailable(e) from e
        return await self.reserve(groups, rid, cost, month, month_end, repeat, spend)  # loads the scripts

    def ask_lease(self, groups: Sequence[Group], lease: Lease) -> asyncio.Future[Any] | None:
        """Ask for `lease` over `groups` (LEASE), sent with this loop turn's calls; None before the
        scripts are loaded. The reply: {1, now_ms, states...} granted, {0} not."""
        if self.link is None or not self._loads:
            return None
        sent = self.link.call_packed(lease_command(LEASE.sha, groups, lease, self.window))
        self._settling.add(sent)  # flush() waits for the answer: a lease granted while closing goes back
        sent.add_done_callback(self._done)
        return sent

    def give_back(self, groups: Sequence[Group], lease: Lease, failed: Callable[[Exception], None]) -> None:
        """Return `lease` (RETURN) now, before anything sent after it (a settlement of one of its
        requests); tried again after each of SETTLE_RETRIES, then `failed`. flush() waits for it."""
        if self.link is None:
            return
        command = return_command(RETURN.sha, groups, lease, self.window)
        sent = self.link.call_packed(command)
        self._settling.add(sent)
        sent.add_done_callback(functools.partial(self._given_back, command=command, failed=failed))

    def _given_back(self, sent: asyncio.Future[Any], command: bytes, failed: Callable[[Exception], None]) -> None:
        self._settling.discard(sent)
        if sent.cancelled() or sent.exception() is not None:  # NOSCRIPT included: loaded on the next attempt
            link = self.link
            assert link is not None
            self._keep(asyncio.ensure_future(self._resend(lambda: self._loaded(lambda: link.call_packed(command)),
                                                          failed)))
        elif not self._settling and self._drained is not None:
            self._drained.set()

    def _orphaned(self, orphan: Any, reply: Any) -> None:
        groups, release = orphan
        release(reserve_results(groups, reply))

    async def reserve(self, groups: Sequence[Group], rid: str, cost: int, month: str,
                      month_end: float, repeat: bool = False, spend: int = 0) -> list[GroupResult]:
        batches = self.batches
        if batches is not None:  # with the others of this loop turn, in one script call
            if repeat and self.leases is not None:
                self.leases.return_holding(rid)
            reply = await self._loaded(lambda: batches.reserve(groups, rid, cost, month, month_end, repeat, spend))
            return reserve_results(groups, reply)
        if len(groups) == 1:
            (reply,) = await self._run([self._reserve_call(groups, rid, cost, month, month_end, repeat, spend)])
            return reserve_results(groups, reply)
        # Redis Cluster: groups live in different slots, so one after the other, undoing on a refusal.
        results: list[GroupResult] = []
        for i, g in enumerate(groups):
            (reply,) = await self._run([self._reserve_call([g], rid, cost, month, month_end, repeat, spend)])
            (result,) = reserve_results([g], reply)
            results.append(result)
            if result.refusal is not None:
                if i:  # a repeat keeps its first admission's count, with no tokens
                    await self.settle(groups[:i], rid, month, month_end, -cost, 0, release=not repeat,
                                      spend_delta=-spend)
                return results + [GroupResult(None)] * (len(groups) - i - 1)
        return results

    def _reserve_call(self, groups: Sequence[Group], rid: str, cost: int, month: str,
                      month_end: float, repeat: bool = False, spend: int = 0) -> _Call:
        return self._framed(RESERVE, groups, month, [int(self.window * 1000)],
                            [rid, cost, int(month_end) + MONTH_GRACE, int(repeat), spend],
                            lambda: limits_arguments(groups))

    def _settle_call(self, groups: Sequence[Group], rid: str, month: str, month_end: float, delta: int, used: int,
                     release: bool, spend_delta: int = 0) -> _Call:
        def static() -> list[Any]:
            out: list[Any] = [len(groups)]
            for g in groups:
                out += [int(g.unit == "cost"), len(g.windows), len(g.budgets), *(b.field for b in g.budgets)]
            return out

        return self._framed(SETTLE, groups, month, [],
                            [rid, used, delta, int(release), int(month_end) + MONTH_GRACE, 0, spend_delta], static)

    def _framed(self, script: _Script, groups: Sequence[Group], month: str, first: list[Any], dynamic: list[Any],
                static: Callable[[], list[Any]]) -> _Call:
        """A call of `script` over `groups` with arguments first + dynamic + static(): the keys, the
        static arguments and their RESP frames are made once per tuple of groups (a plan's) and month."""
        cache_key = (script.sha, id(groups), month)
        frames = self._frames.get(cache_key)
        if frames is None or frames[0] is not groups:
            keys = group_keys(groups, month)
            rest = static()
            head = [script.sha, len(keys), *keys, *first]
            frames = (groups, keys, rest, b"*%d\r\n" % (1 + len(head) + len(dynamic) + len(rest))
                      + bulk_strings(["EVALSHA", *head]), bulk_strings(rest))
            if len(self._frames) >= MAX_FRAMES:
                self._frames.clear()
            self._frames[cache_key] = frames  # holds `groups`: its id is not reused meanwhile
        _, keys, rest, head_bytes, tail_bytes = frames
        return _Call(script, keys, [*first, *dynamic, *rest], head_bytes + bulk_strings(dynamic) + tail_bytes)

    async def settle(self, groups: Sequence[Group], rid: str, month: str, month_end: float,
                     delta: int, used: int, release: bool, spend_delta: int = 0) -> None:
        batches = self.batches
        if batches is not None:
            await self._loaded(lambda: batches.settle(groups, rid, month, month_end, delta, used, release, spend_delta))
            return
        await self._run([self._settle_call(part, rid, month, month_end, delta, used, release, spend_delta)
                         for part in self._by_slot(groups)])

    def _by_slot(self, groups: Sequence[Group]) -> list[Sequence[Group]]:
        """One script call may touch one Redis Cluster slot only: there, a call per group."""
        return [[g] for g in groups] if self.cluster else [groups]

    def settle_soon(self, groups: Sequence[Group], rid: str, month: str, month_end: float, delta: int, used: int,
                    release: bool, failed: Callable[[Sequence[Group], StoreUnavailable], None],
                    spend_delta: int = 0) -> None:
        """Settle without waiting: the calls leave with the next round trip (after anything sent
        before them, so what this replica reads or reserves next sees them). A call Redis does not
        answer is tried again after each of SETTLE_RETRIES, then `failed` is told which groups it missed.
        `flush()` (and close()) wait for every one still on its way."""
        if self.batches is not None and self._loads:  # the common case: no task, one future
            sent = self.batches.settle(groups, rid, month, month_end, delta, used, release, spend_delta)
            self._settling.add(sent)
            sent.add_done_callback(functools.partial(
                self._settled, groups=groups, failed=failed,
                retry=lambda: self._settle_call(groups, rid, month, month_end, delta, used, release, spend_delta)))
            return
        for g in self._by_slot(groups):
            call = self._settle_call(g, rid, month, month_end, delta, used, release, spend_delta)
            self._keep(asyncio.ensure_future(self._settle_retrying(g, call, 0, failed)))

    def _settled(self, sent: asyncio.Future[Any], groups: Sequence[Group], retry: Callable[[], _Call],
                 failed: Callable[[Sequence[Group], StoreUnavailable], None]) -> None:
        self._settling.discard(sent)
        if not sent.cancelled() and sent.exception() is not None:  # tried again alone, as SETTLE `again`
            self._keep(asyncio.ensure_future(self._settle_retrying(groups, retry(), 1, failed)))
        elif not self._settling and self._drained is not None:
            self._drained.set()

    async def _settle_retrying(self, group: Sequence[Group], call: _Call,
                               attempt: int, failed: Callable[[Sequence[Group], StoreUnavailable], None]) -> None:
        again = _Call(call.script, call.keys, [*call.args[:5], 1, *call.args[6:]])  # applied at most once
        if attempt == 0:
            try:
                await self._run([call])
                return
            except StoreUnavailable:
                pass
        await self._resend(lambda: self._run([again]), lambda e: failed(group, e))

    async def _resend(self, send: Callable[[], Awaitable[Any]], failed: Callable[[StoreUnavailable], None]) -> None:
        """A call Redis did not answer, sent again after each of SETTLE_RETRIES; then `failed`."""
        error = StoreUnavailable("not tried")
        for delay in SETTLE_RETRIES:
            await asyncio.sleep(delay)
            try:
                await send()
                return
            except StoreUnavailable as e:
                error = e
        failed(error)

    def _keep(self, task: asyncio.Future[Any]) -> None:
        self._settling.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._settling.discard(task)
        if not self._settling and self._drained is not None:
            self._drained.set()

    async def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Return the leases, then wait until every settlement sent was answered (or given up); False on timeout."""
        if self.leases is not None:
            self.leases.return_all()
        if not self._settling:
            return True
        if self.link is not None:
            self.link.wake()  # lazy settlements leave now
        self._drained = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                while self._settling:
                    self._drained.clear()
                    await self._drained.wait()
        except TimeoutError:
            return False
        return True

    async def add_month_usage(self, group: Group, month: str, month_end: float, tokens: int,
                              requests: int) -> None:
        """Fold usage counted elsewhere (while Redis was away) into the month counters (`tokens`: the
        group's unit, money for a cost group)."""
        key = month_key(group, month)
        commands: list[tuple[Any, ...]] = [("HINCRBY", key, b.field, tokens) for b in group.budgets]
        commands += [("HINCRBY", key, "requests", requests), ("EXPIREAT", key, int(month_end) + MONTH_GRACE)]
        try:
            if self.link is not None:
                link = self.link
                await asyncio.gather(*(link.call(*c) for c in commands))
                return
            async with self.client.pipeline(transaction=False) as pipe:
                for c in commands:
                    pipe.execute_command(*c)
                await pipe.execute()
        except (RedisError, OSError, WireError, ReplyError) as e:
            raise _unavailable(e) from e

    async def peek(self, group: Group, month: str) -> tuple[dict[str, int], list[WindowState]]:
        if self.leases is not None:
            self.leases.return_all()  # usage shows what was used, not what is leased (returns go first)
        keys = window_keys(group) + [month_key(group, month)]
        (reply,) = await self._run([_Call(PEEK, keys, [int(self.window * 1000), len(group.windows)])])
        states = []
        for i, w in enumerate(group.windows):
            count, total, reset = reply[3 * i: 3 * i + 3]
            states.append(WindowState(w.rpm, w.tpm, int(count), int(total), reset / 1000, reset / 1000))
        flat = reply[3 * len(group.windows):]
        counters = {text(flat[k]): int(flat[k + 1]) for k in range(0, len(flat), 2)}
        return counters, states

    async def ping(self) -> bool:
        try:
            if self.link is not None:
                return bool(await self.link.call("PING"))
            return bool(await self.client.ping())
        except (RedisError, OSError, WireError, ReplyError):
            return False

    async def close(self) -> None:
        if self.leases is not None:
            self.leases.closed = True
        await self.flush()
        if self.link is not None:
            await self.link.close()
        else:
            await self.client.aclose()


def _unavailable(e: BaseException) -> StoreUnavailable:
    timed_out = isinstance(e, (TimeoutError, RedisTimeoutError)) or (isinstance(e, WireError) and e.timed_out)
    return StoreUnavailable(str(e), timed_out)
