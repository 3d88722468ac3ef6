"""Leases: a busy plan admits most of its requests without a Redis round trip.

A plan (one request's groups: its key's windows and budgets, its team Budgets', its provider
model's) that is busy takes a lease in Redis: a block of n requests, T tokens and S money,
counted at once in every window and budget of the plan (LEASE in lua_lease.py); in a window the
block's requests are placed at the end of the lease's life. Requests that fit in what is left of
the block are admitted here, in memory. After `seconds` at most (half a second; a twentieth of a
short window), or when it runs out, the lease is returned (RETURN): the window keeps a request of
the block per request admitted, the budgets keep what was used.

Why the bounds of one-by-one admission hold:
- Redis counts each leased request from the grant until the end of the lease's life plus the
  window: never less than it would count the request admitted directly (at most `seconds`
  more). The replicas together admit no more than a window's limit, and a budget pays out no more than what was leased from what was left.
- A lease is granted only while every limit it touches has ROOM times the block left. Near a
  limit, requests go to Redis one by one, as without leases, and what the replicas still hold
  is admitted by the next requests they see or returned within `seconds`: three replicas
  under load admit exactly the limit.
- A plan asks for a lease only after BUSY requests within `seconds` went to Redis one by one:
  a quiet key never holds capacity it does not use.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from lockgate.proxy.quota.headers import reset_text
from lockgate.proxy.quota.metrics import LEASED_REQUESTS, LEASES
from lockgate.proxy.quota.plan import Group
from lockgate.proxy.quota.window import WindowState

LEASE_SECONDS = 0.5  # a lease's life at most (a twentieth of the window when that is shorter)
BUSY = 16  # requests sent to Redis one by one within a lease's life before a plan asks for one
FIRST_SIZE = 16  # requests in a plan's first lease; it doubles while leases run out, halves while they idle
MIN_SIZE = 2
MAX_SIZE = 256
ROOM = 4  # a lease is granted while every limit it touches has this many times the block left
MARKER_TTL = 3600  # seconds a lease's marker (what makes RETURN apply once) outlives an unreturned lease

_IDS = itertools.count(1)
_PREFIX = uuid.uuid4().hex[:12]


def _new_prefix() -> None:
    global _PREFIX
    _PREFIX = uuid.uuid4().hex[:12]


os.register_at_fork(after_in_child=_new_prefix)  # a forked worker is a replica of its own


def new_lease_id() -> str:
    return f"L{_PREFIX}{next(_IDS):x}"


# The tightest window for the x-ratelimit-* trio: (limit as text, left before the block, reset as text)
HeaderRow = tuple[str, int, str]


@dataclass(slots=True, eq=False)
class Lease:
    lid: str
    month: str
    month_end: float
    size: int  # requests in the block
    tokens: int
    spend: int  # money (micro-units)
    sent: float = 0.0  # local monotonic clock when it was asked for: never after the grant
    deadline: float = 0.0  # local monotonic clock: no admission after it (the block's time in Redis is later)
    rows: tuple[HeaderRow | None, HeaderRow | None] = (None, None)  # x-ratelimit-* requests and tokens: header_rows
    uses: dict[str, list[int]] = field(default_factory=dict)  # rid -> [tokens, 1 once settled with some]
    used_tokens: int = 0
    used_spend: int = 0
    open: bool = True
    timer: asyncio.TimerHandle | None = None


def fits(lease: Lease, now: float, cost: int, spend: int, month: str) -> bool:
    return (now < lease.deadline and len(lease.uses) < lease.size and lease.used_tokens + cost <= lease.tokens
            and lease.used_spend + spend <= lease.spend and lease.month == month)


def next_size(size: int, lease: Lease) -> int:
    """The next lease's size: double when this one ran out of requests, half when it used under a quarter."""
    used = len(lease.uses)
    if used >= lease.size:
        return min(MAX_SIZE, size * 2)
    if used * 4 < lease.size:
        return max(MIN_SIZE, size // 2)
    return size


def lease_seconds(window: float) -> float:
    return min(LEASE_SECONDS, window / 20)


def life_ms(seconds: float) -> int:
    """How far after the grant, on Redis' clock, the block's members are placed: past the last
    admission a lease may make (its deadline counts from before the grant)."""
    return math.ceil(seconds * 1000) + 1


def return_arguments(lease: Lease) -> list[Any]:
    """RETURN's arguments of a lease's use: requests used, tokens of those settled, then the others,
    each (rid, tokens), entering under its own id."""
    settled = 0
    own: list[Any] = []
    for rid, (tokens, done) in lease.uses.items():
        if done:
            settled += tokens
        else:
            own += [rid, tokens]
    return [len(lease.uses), settled, len(own) // 2, *own]


def end_of_month(month: str) -> float:
    """UNIX time when the UTC month 'YYYY-MM' ends."""
    year, number = int(month[:4]), int(month[5:7])
    year, number = (year + 1, 1) if number == 12 else (year, number + 1)
    return datetime(year, number, 1, tzinfo=timezone.utc).timestamp()


def granted_states(groups: Sequence[Group], reply: Sequence[Any]) -> tuple[WindowState, ...]:
    """The first group's window states in a LEASE reply ({1, now, count1, sum1, reset1, ...})."""
    if not groups:
        return ()
    states = []
    for i, w in enumerate(groups[0].windows):
        count, total, reset = reply[2 + 3 * i: 5 + 3 * i]
        states.append(WindowState(w.rpm, w.tpm, int(count), int(total), reset / 1000, reset / 1000))
    return tuple(states)


def header_rows(states: Sequence[WindowState], size: int, tokens: int) -> tuple[HeaderRow | None, HeaderRow | None]:
    """The windows that decide the x-ratelimit-* headers of a lease's requests (as ratelimit_headers
    picks them: every request counts in every window alike, so the tightest stays so), with what they
    had left before the block."""
    requests: HeaderRow | None = None
    left_tokens: HeaderRow | None = None
    for s in states:
        if s.rpm is not None:
            left = s.rpm - (s.requests - size)
            if requests is None or left < requests[1]:
                requests = (str(s.rpm), left, reset_text(s.reset_requests))
        if s.tpm is not None:
            left = s.tpm - (s.tokens - tokens)
            if left_tokens is None or left < left_tokens[1]:
                left_tokens = (str(s.tpm), left, reset_text(s.reset_tokens))
    return requests, left_tokens


class LeaseStore(Protocol):
    """What leases need of the Redis store."""

    window: float

    def ask_lease(self, groups: Sequence[Group], lease: Lease) -> asyncio.Future[Any] | None: ...

    def give_back(self, groups: Sequence[Group], lease: Lease, failed: Callable[[Exception], None]) -> None: ...


SettleLate = Callable[[Sequence[Group], str, str, float, int, int, bool, int], None]


class LeaseBook:
    """The open leases of one store: returned together on flush, close and usage reads."""

    def __init__(self, store: LeaseStore) -> None:
        self.store = store
        self.open: dict[Lease, LeasePlan] = {}
        self.granted, self.refused, self.failed = (LEASES.cell((outcome,)) for outcome in ("granted", "refused", "failed"))
        self.leased = LEASED_REQUESTS.cell()
        self.closed = False  # the store is closing: a lease granted now goes straight back

    def plan(self, groups: Sequence[Group], available: Callable[[], bool], settle_late: SettleLate,
             failed: Callable[[Sequence[Group], Lease, Exception], None]) -> LeasePlan:
        return LeasePlan(self, groups, available, settle_late, failed)

    def return_all(self) -> None:
        for lease, plan in list(self.open.items()):
            plan.retire(lease)

    def return_holding(self, rid: str) -> None:
        """Return the lease that admitted `rid` (a failover admits it again: Redis must hold it first)."""
        for lease, plan in list(self.open.items()):
            if rid in lease.uses:
                plan.retire(lease)


class LeasePlan:
    """A compiled plan over a shared store (see MemoryPlan): `reserve` admits from the plan's lease,
    or returns None and the request goes to Redis; `settle` settles what it admitted."""

    __slots__ = ("book", "groups", "available", "settle_late", "failed", "lease", "spare", "asking",
                 "size", "quiet_until", "busy_since", "busy", "cost_hint", "spend_hint", "seconds", "_end")

    def __init__(self, book: LeaseBook, groups: Sequence[Group], available: Callable[[], bool],
                 settle_late: SettleLate, failed: Callable[[Sequence[Group], Lease, Exception], None]) -> None:
        self.book = book
        self.groups = groups
        self.available = available  # False while the store's failover is in charge
        self.settle_late = settle_late  # settles a request of a lease already returned
        self.failed = failed  # told of a lease Redis never took back
        self.lease: Lease | None = None
        self.spare: Lease | None = None  # the next lease, asked for while this one was half used
        self.asking = False
        self.size = FIRST_SIZE
        self.quiet_until = 0.0
        self.busy_since = 0.0
        self.busy = 0  # requests sent to Redis one by one since busy_since
        self.cost_hint = 1  # the largest tokens and money a request of the last lease reserved
        self.spend_hint = 0
        self.seconds = lease_seconds(book.store.window)
        self._end: tuple[str, float] = ("", 0.0)

    def reserve(self, rid: str, cost: int, month: str, spend: int = 0) -> tuple[dict[str, str], Lease] | None:
        now = time.monotonic()
        lease = self.lease
        while lease is not None:
            if fits(lease, now, cost, spend, month):
                lease.uses[rid] = [cost, 0]
                lease.used_tokens += cost
                lease.used_spend += spend
                if cost > self.cost_hint:
                    self.cost_hint = cost
                if spend > self.spend_hint:
                    self.spend_hint = spend
                if (self.spare is None and not self.asking
                        and (2 * len(lease.uses) >= lease.size or 2 * lease.used_tokens >= lease.tokens)):
                    self._ask(month, now)
                return self._headers(lease), lease
            self.retire(lease)
            lease = self.lease
        if now - self.busy_since > self.seconds:
            self.busy_since, self.busy = now, 0
        self.busy += 1
        if cost > self.cost_hint:
            self.cost_hint = cost
        if spend > self.spend_hint:
            self.spend_hint = spend
        if self.busy >= BUSY and not self.asking and now >= self.quiet_until and self.available():
            self._ask(month, now)
        return None

    def settle(self, rid: str, held: Lease, month: str, delta: int, used: int, spend_delta: int = 0) -> None:
        use = held.uses.get(rid) if held.open else None
        if use is not None:  # still open: counted in the lease, told Redis when it is returned
            use[0] = used
            use[1] = 1 if used else 0  # settled with nothing: kept under its id, a failover may admit it again
            held.used_tokens += delta
            held.used_spend += spend_delta
            return
        self.settle_late(self.groups, rid, month, held.month_end, delta, used, False, spend_delta)

    def retire(self, lease: Lease) -> None:
        """Return `lease` (once) and let the spare take its place."""
        if lease.open:
            lease.open = False
            if lease.timer is not None:
                lease.timer.cancel()
            self.book.open.pop(lease, None)
            self.book.leased.value += len(lease.uses)
            self.size = next_size(self.size, lease)
            if len(lease.uses) * 4 < lease.size and self.size == MIN_SIZE:
                self.quiet_until = time.monotonic() + 4 * self.seconds  # too quiet for leases: not now
            self.book.store.give_back(self.groups, lease, lambda e: self.failed(self.groups, lease, e))
        if self.lease is lease:
            self.lease, self.spare = self.spare, None
        elif self.spare is lease:
            self.spare = None

    def _month_end(self, month: str) -> float:
        if self._end[0] != month:
            self._end = (month, end_of_month(month))
        return self._end[1]

    def _ask(self, month: str, now: float) -> None:
        if self.book.closed:
            return
        size = self.size
        lease = Lease(new_lease_id(), month, self._month_end(month), size, size * max(1, self.cost_hint),
                      size * self.spend_hint, sent=now)
        sent = self.book.store.ask_lease(self.groups, lease)
        if sent is None:
            return
        self.asking = True
        sent.add_done_callback(lambda done: self._answered(done, lease))

    def _answered(self, done: asyncio.Future[Any], lease: Lease) -> None:
        self.asking = False
        self.cost_hint, self.spend_hint = 1, 0  # learned again from the requests of this lease
        if done.cancelled() or done.exception() is not None:
            # It may have been granted with its answer lost: return it (RETURN applies once, or not at all).
            lease.size = 0
            self.book.failed.value += 1
            self.book.store.give_back(self.groups, lease, lambda e: None)
            self.quiet_until = time.monotonic() + self.seconds
            return
        reply = done.result()
        if reply[0] == 0:  # not enough room left under a limit: smaller, or one by one for a while
            self.book.refused.value += 1
            if self.size == MIN_SIZE:
                self.quiet_until = time.monotonic() + self.seconds
            self.size = max(MIN_SIZE, self.size // 2)
            return
        self.book.granted.value += 1
        if self.book.closed:
            self.book.store.give_back(self.groups, lease, lambda e: self.failed(self.groups, lease, e))
            return
        lease.rows = header_rows(granted_states(self.groups, reply), lease.size, lease.tokens)
        lease.deadline = lease.sent + self.seconds
        self.book.open[lease] = self
        lease.timer = asyncio.get_running_loop().call_later(max(0.0, lease.deadline - time.monotonic()),
                                                            self.retire, lease)
        if self.lease is None:
            self.lease = lease
        else:
            self.spare = lease

    def _headers(self, lease: Lease) -> dict[str, str]:
        """The x-ratelimit-* headers of the first group: its windows at the grant, with what this
        lease admitted so far (not the rest of the block). This runs on every admission from a lease."""
        requests, tokens = lease.rows
        headers: dict[str, str] = {}
        if requests is not None:
            left = requests[1] - len(lease.uses)
            headers = {"x-ratelimit-limit-requests": requests[0],
                       "x-ratelimit-remaining-requests": str(left) if left > 0 else "0",
                       "x-ratelimit-reset-requests": requests[2]}
        if tokens is not None:
            left = tokens[1] - lease.used_tokens
            headers["x-ratelimit-limit-tokens"] = tokens[0]
            headers["x-ratelimit-remaining-tokens"] = str(left) if left > 0 else "0"
            headers["x-ratelimit-reset-tokens"] = tokens[2]
        return headers
