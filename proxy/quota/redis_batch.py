"""The Redis store's calls of one event-loop turn as two script calls: every settlement in one
SETTLE_MANY, then every reservation in one RESERVE_MANY (lua_batch.py), whatever the number of requests.

A call is packed from two parts: its plan (the groups' keys, limits and budget fields, the
month's expiry), packed once per plan and month and sent once per batch, and its own few
arguments (request id, tokens, money). Redis reads each window and month counter a batch touches once and writes it
once, so its work per request shrinks as concurrency grows; at concurrency 1 a batch holds one call.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lockgate.proxy.quota import lua_batch
from lockgate.proxy.quota.plan import Group
from lockgate.proxy.quota.redis_wire import PipelinedLink, Plan, bulk

PREFIX = "lockgate:q"
MONTH_GRACE = 86400  # month counters stay readable a day after the month ends
MAX_FRAMES = 100_000  # packed plan frames kept (plans x months x kinds); this only guards memory
RESERVE_MANY_SHA = hashlib.sha1(lua_batch.RESERVE_MANY.encode()).hexdigest()
SETTLE_MANY_SHA = hashlib.sha1(lua_batch.SETTLE_MANY.encode()).hexdigest()
_FLAG = (bulk(b"0"), bulk(b"1"))


def window_keys(group: Group) -> list[str]:
    keys = []
    for w in group.windows:
        base = f"{PREFIX}:{{{group.tag}}}:w:{w.name}"
        keys += [f"{base}:z", f"{base}:h"]
    return keys


def month_key(group: Group, month: str) -> str:
    return f"{PREFIX}:{{{group.tag}}}:m:{month}"


def group_keys(groups: Sequence[Group], month: str) -> list[str]:
    """A call's keys over `groups`: per group its windows' (sorted set, hash), then its month hash if it has budgets."""
    return [k for g in groups for k in window_keys(g) + ([month_key(g, month)] if g.budgets else [])]


def limit(v: int | None) -> int:
    return -1 if v is None else v


def packed(values: Sequence[Any]) -> bytes:
    return b"".join(bulk(v if isinstance(v, bytes) else str(v).encode()) for v in values)


@dataclass(frozen=True, slots=True)
class _Frame(Plan):
    groups: Sequence[Group] = ()  # held: its id is the cache key, so it is not reused meanwhile


class Batches:
    """The reservations and settlements of one loop turn on `link`, each kind in one script call."""

    def __init__(self, link: PipelinedLink, window: float) -> None:
        # Settlements first: one made before a reservation (a failover's) is counted before it.
        self.settles = link.batch(SETTLE_MANY_SHA, 5, holds=False)  # nobody waits for them: they hold nobody back
        self.reserves = link.batch(RESERVE_MANY_SHA, 4, [int(window * 1000)])
        self._frames: dict[tuple[bool, int, str], _Frame] = {}

    def reserve(self, groups: Sequence[Group], rid: str, cost: int, month: str, month_end: float,
                repeat: bool, spend: int, orphan: Any = None) -> asyncio.Future[Any]:
        """A RESERVE over `groups`; the future's result is its reply (`orphan`: see ScriptBatch.add)."""
        frame = self._frames.get((True, id(groups), month))
        if frame is None or frame.groups is not groups:
            frame = self._frame(True, groups, month, month_end)
        return self.reserves.add(frame, b"%b%b%b%b" % (bulk(rid.encode()), bulk(b"%d" % cost), _FLAG[repeat],
                                                       bulk(b"%d" % spend)), orphan)

    def settle(self, groups: Sequence[Group], rid: str, month: str, month_end: float, delta: int, used: int,
               release: bool, spend_delta: int) -> asyncio.Future[Any]:
        """A SETTLE over `groups` (a first attempt); the future's result is the batch's count."""
        frame = self._frames.get((False, id(groups), month))
        if frame is None or frame.groups is not groups:
            frame = self._frame(False, groups, month, month_end)
        return self.settles.add(frame, b"%b%b%b%b%b" % (bulk(rid.encode()), bulk(b"%d" % used), bulk(b"%d" % delta),
                                                        _FLAG[release], bulk(b"%d" % spend_delta)))

    def _frame(self, reserve: bool, groups: Sequence[Group], month: str, month_end: float) -> _Frame:
        keys = group_keys(groups, month)
        static: list[Any] = [int(month_end) + MONTH_GRACE, len(groups)]
        for g in groups:
            static += [int(g.unit == "cost"), len(g.windows)]
            if reserve:
                for w in g.windows:
                    static += [limit(w.rpm), limit(w.tpm)]
                static.append(len(g.budgets))
                for b in g.budgets:
                    static += [b.field, limit(b.limit)]
            else:
                static += [len(g.budgets), *(b.field for b in g.budgets)]
        frame = _Frame(packed(keys), len(keys), packed(static), len(static), groups)
        if len(self._frames) >= MAX_FRAMES:
            self._frames.clear()
        self._frames[(reserve, id(groups), month)] = frame
        return frame
