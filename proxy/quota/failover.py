"""Redis first; while it is away, the configured fail mode.

fail-open: each replica enforces its share (limit / replicas) in memory, and
budgets with what was left when Redis last answered, shared the same way.
Usage counted meanwhile is folded into Redis when it returns, so the month's
totals stay whole. fail-closed: admissions raise QuotaStoreUnavailable (503).
A refused connection, or TIMEOUTS_TO_TRIP timeouts in a row, leave Redis
alone for RETRY_AFTER seconds, then it is tried again. A single slow answer
only sends its own call to the fail mode: a busy moment is not an outage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from lockgate.proxy.quota import QuotaStoreUnavailable
from lockgate.proxy.quota.lease import Lease, LeasePlan
from lockgate.proxy.quota.memory_store import MemoryStore
from lockgate.proxy.quota.metrics import STORE_ERRORS, STORE_UP
from lockgate.proxy.quota.plan import Group, GroupResult, local_share
from lockgate.proxy.quota.redis_store import RedisStore
from lockgate.proxy.quota.store import StoreUnavailable
from lockgate.proxy.quota.window import WindowState

log = logging.getLogger("lockgate.quota")

RETRY_AFTER = 0.5  # seconds between attempts while Redis is away
TIMEOUTS_TO_TRIP = 3


@dataclass
class _Pending:
    group: Group
    month_end: float
    tokens: int = 0
    requests: int = 0


class FailoverStore:
    def __init__(self, shared: RedisStore, fail_mode: str, replicas: int, window: float) -> None:
        if fail_mode not in ("open", "closed"):
            raise ValueError(f"quota fail mode must be 'open' or 'closed', not {fail_mode!r}")
        self.shared = shared
        self.fail_mode = fail_mode
        self.replicas = max(1, replicas)
        self.local = MemoryStore(window)
        self._down_until = 0.0
        self._up = True
        self._timeouts = 0  # timeouts in a row
        self._local_rids: set[str] = set()
        self._local_spend: dict[str, int] = {}  # local reservations' money (micro-units), owed to Redis when settled
        self._repeat_rids: set[str] = set()  # local reservations that repeat an earlier admission
        self._last_month: dict[str, dict[str, int]] = {}  # group tag -> budget field -> used, as Redis last said
        self._pending: dict[tuple[str, str], _Pending] = {}  # (tag, month) -> usage Redis has not seen
        self._flushing: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[None]] = set()  # settlements of local reservations, in the background
        STORE_UP.cell().value = 1

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, error: StoreUnavailable) -> None:
        STORE_ERRORS.cell().value += 1
        self._timeouts = self._timeouts + 1 if error.timed_out else TIMEOUTS_TO_TRIP
        if self._timeouts < TIMEOUTS_TO_TRIP:
            return
        if self._up:  # log transitions, not every failed call
            log.warning("quota store unavailable (fail mode %s): %r", self.fail_mode, error)
        self._up = False
        STORE_UP.cell().value = 0
        self._down_until = time.monotonic() + RETRY_AFTER

    def _answered(self) -> None:
        self._timeouts = 0
        if not self._up:
            log.warning("quota store answers again")
        self._up = True
        STORE_UP.cell().value = 1
        if self._pending and (self._flushing is None or self._flushing.done()):
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def reserve(self, groups: Sequence[Group], rid: str, cost: int, month: str,
                      month_end: float, repeat: bool = False, spend: int = 0) -> list[GroupResult]:
        if self.available:
            try:
                results = await self.shared.reserve(groups, rid, cost, month, month_end, repeat, spend)
            except StoreUnavailable as e:
                self._failed(e)
            else:
                return self._took(groups, results)
        return await self._fail_mode(groups, rid, cost, month, month_end, repeat, spend)

    async def _fail_mode(self, groups: Sequence[Group], rid: str, cost: int, month: str,
                         month_end: float, repeat: bool, spend: int) -> list[GroupResult]:
        """Redis did not answer: refused (closed), or this replica's share in memory (open)."""
        if self.fail_mode == "closed":
            raise QuotaStoreUnavailable()
        shares = [local_share(g, self.replicas, self._last_month.get(g.tag, {})) for g in groups]
        results = await self.local.reserve(shares, rid, cost, month, month_end, repeat, spend)
        if repeat:
            self._repeat_rids.add(rid)  # its request was counted (or owed) at its first admission
        self._local_rids.add(rid)
        if spend and all(r.refusal is None for r in results):
            self._local_spend[rid] = spend
        return results

    def compile(self, groups: Sequence[Group]) -> LeasePlan | None:
        """Admissions over `groups` from leases of Redis' capacity (lease.py), on one Redis."""
        book = self.shared.leases
        if book is None:
            return None

        def failed(missed: Sequence[Group], lease: Lease, error: Exception) -> None:
            # Redis never took the lease back: its budgets keep the whole block (a restarted Redis may have
            # lost it: nothing is taken off), the month owes its requests and what they used beyond it.
            if isinstance(error, StoreUnavailable):
                self._failed(error)
            self._owe(missed, lease.month, lease.month_end, max(0, lease.used_tokens - lease.tokens), len(lease.uses),
                      max(0, lease.used_spend - lease.spend))

        return book.plan(groups, lambda: self.available, self.settle_soon, failed)

    def reserve_soon(self, groups: Sequence[Group], rid: str, cost: int, month: str, month_end: float,
                     repeat: bool, spend: int, orphan: Any) -> asyncio.Future[Any] | None:
        """Redis' reply to come, for `replied`, while Redis is up; None: use reserve()."""
        return self.shared.reserve_soon(groups, rid, cost, month, month_end, repeat, spend, orphan) \
            if self.available else None

    async def replied(self, sent: asyncio.Future[Any], groups: Sequence[Group], rid: str, cost: int, month: str,
                      month_end: float, repeat: bool, spend: int) -> list[GroupResult]:
        """As reserve, for a reservation `reserve_soon` sent."""
        try:
            results = await self.shared.replied(sent, groups, rid, cost, month, month_end, repeat, spend)
        except StoreUnavailable as e:
            self._failed(e)
            return await self._fail_mode(groups, rid, cost, month, month_end, repeat, spend)
        return self._took(groups, results)

    def _took(self, groups: Sequence[Group], results: list[GroupResult]) -> list[GroupResult]:
        self._answered()
        for g, r in zip(groups, results):
            if r.month:
                self._last_month[g.tag] = r.month
        return results

    async def settle(self, groups: Sequence[Group], rid: str, month: str, month_end: float,
                     delta: int, used: int, release: bool, spend_delta: int = 0) -> None:
        if rid in self._local_rids:
            self._local_rids.discard(rid)
            spent = self._local_spend.pop(rid, 0) + spend_delta  # the money really used
            await self.local.settle(groups, rid, month, month_end, delta, used, release, spend_delta)
            repeated = rid in self._repeat_rids
            self._repeat_rids.discard(rid)
            if not release:
                self._owe(groups, month, month_end, used, 0 if repeated else 1, spent)
            return
        if self.available:
            try:
                await self.shared.settle(groups, rid, month, month_end, delta, used, release, spend_delta)
            except StoreUnavailable as e:
                self._failed(e)
            else:
                self._answered()
                return
        self._owe(groups, month, month_end, delta, -1 if release else 0, spend_delta)

    def settle_soon(self, groups: Sequence[Group], rid: str, month: str, month_end: float,
                    delta: int, used: int, release: bool, spend_delta: int = 0) -> None:
        """As settle, without waiting for Redis: what it cannot take after its retries is owed like
        any usage counted while it was away."""
        if rid in self._local_rids or not self.available:
            self._track(self.settle(groups, rid, month, month_end, delta, used, release, spend_delta))
            return

        def failed(missed: Sequence[Group], error: StoreUnavailable) -> None:
            self._failed(error)
            self._owe(missed, month, month_end, delta, -1 if release else 0, spend_delta)

        self.shared.settle_soon(groups, rid, month, month_end, delta, used, release, failed, spend_delta)

    def _track(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _owe(self, groups: Sequence[Group], month: str, month_end: float, tokens: int, requests: int,
             spend: int = 0) -> None:
        for g in groups:
            if g.budgets:
                p = self._pending.setdefault((g.tag, month), _Pending(g, month_end))
                p.tokens += g.amount(tokens, spend)
                p.requests += requests

    async def _flush(self) -> None:
        while self._pending:
            (tag, month), p = self._pending.popitem()
            try:
                await self.shared.add_month_usage(p.group, month, p.month_end, p.tokens, p.requests)
            except StoreUnavailable as e:
                self._failed(e)
                self._owe([p.group], month, p.month_end, p.tokens, p.requests)
                return

    async def peek(self, group: Group, month: str) -> tuple[dict[str, int], list[WindowState]]:
        if self.available:
            try:
                return await self.shared.peek(group, month)
            except StoreUnavailable as e:
                self._failed(e)
        return await self.local.peek(group, month)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
        if self._flushing is not None:
            self._flushing.cancel()
        await self.shared.close()
        await self.local.close()
