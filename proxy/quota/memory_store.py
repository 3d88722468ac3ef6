"""The quota store of a single replica: windows in memory, the month's usage
in a JSON file under the state directory so a restart keeps it."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lockgate.proxy.quota.headers import LimitRow, window_headers
from lockgate.proxy.quota.plan import MONTH_REQUESTS, Group, GroupResult, Refusal
from lockgate.proxy.quota.window import SlidingWindow, WindowState

USAGE_FILE = "quota-usage.json"
MAX_GROUPS = 10_000  # groups whose windows are remembered by identity (the service reuses its groups)
FLUSH_INTERVAL = 1.0  # seconds between writes of the usage file while it changes


class MemoryStore:
    def __init__(self, window: float = 60.0, state_dir: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._windows: dict[tuple[str, str], SlidingWindow] = {}
        self._by_group: dict[int, tuple[Group, list[SlidingWindow]]] = {}
        self._months: dict[str, dict[str, dict[str, int]]] = {}  # month -> tag -> field -> count
        self._path = Path(state_dir) / USAGE_FILE if state_dir else None
        self._dirty = False
        self._flusher: asyncio.Task[None] | None = None
        if self._path is not None and self._path.exists():
            self._months = json.loads(self._path.read_text()).get("months", {})

    def _window(self, tag: str, name: str) -> SlidingWindow:
        w = self._windows.get((tag, name))
        if w is None:
            w = self._windows[(tag, name)] = SlidingWindow(self.window)
        return w

    def _windows_of(self, group: Group) -> list[SlidingWindow]:
        """The group's windows, found once per group object (the service reuses its groups)."""
        hit = self._by_group.get(id(group))
        if hit is not None and hit[0] is group:
            return hit[1]
        windows = [self._window(group.tag, spec.name) for spec in group.windows]
        if len(self._by_group) >= MAX_GROUPS:
            self._by_group.clear()
        self._by_group[id(group)] = (group, windows)  # holds the group, so its id stays its own
        return windows

    def _month_table(self, month: str) -> dict[str, dict[str, int]]:
        """tag -> field -> count for `month`; a new month drops the older ones."""
        table = self._months.get(month)
        if table is None:
            self._months = {month: {}, **{m: v for m, v in self._months.items() if m > month}}
            table = self._months[month]
        return table

    def _refusal(self, group: Group, cost: int, table: dict[str, dict[str, int]], now: float,
                 repeat_of: str, spend: int = 0) -> Refusal | None:
        if group.budgets:
            counters = table.get(group.tag) or {}
            amount = group.amount(cost, spend)
            for b in group.budgets:
                if b.limit is not None and counters.get(b.field, 0) + amount > b.limit:
                    return Refusal("budget", float("inf"), b.field)
        for spec, w in zip(group.windows, self._windows_of(group)):
            refused = w.wait(now, spec.rpm, spec.tpm, cost, repeat_of)
            if refused is not None:
                return Refusal(refused[0], refused[1], spec.name)  # type: ignore[arg-type]
        return None

    def _take(self, group: Group, rid: str, cost: int, table: dict[str, dict[str, int]], now: float,
              repeat: bool, spend: int = 0) -> GroupResult:
        states = []
        for spec, w in zip(group.windows, self._windows_of(group)):
            w.add_again(now, rid, cost) if repeat else w.add(now, rid, cost)
            states.append(w.state(now, spec.rpm, spec.tpm))
        if not group.budgets:
            return GroupResult(None, tuple(states), {})
        counters = table.setdefault(group.tag, {})
        amount = group.amount(cost, spend)
        for b in group.budgets:
            counters[b.field] = counters.get(b.field, 0) + amount
        counters[MONTH_REQUESTS] = counters.get(MONTH_REQUESTS, 0) + (0 if repeat else 1)
        return GroupResult(None, tuple(states), {b.field: counters[b.field] for b in group.budgets})

    def compile(self, groups: Sequence[Group]) -> MemoryPlan:
        """A plan that reserves in `groups` (and settles) without looking anything up per request."""
        return MemoryPlan(self, groups)

    async def reserve(self, groups: Sequence[Group], rid: str, cost: int, month: str,
                      month_end: float, repeat: bool = False, spend: int = 0) -> list[GroupResult]:
        return self.reserve_now(groups, rid, cost, month, month_end, repeat, spend)

    def reserve_now(self, groups: Sequence[Group], rid: str, cost: int, month: str,
                    month_end: float, repeat: bool = False, spend: int = 0) -> list[GroupResult]:
        """Every group or none, synchronously (atomic on the event loop): the service's fast path."""
        now = self.clock()
        table = self._month_table(month)
        repeat_of = rid if repeat else ""
        for group in groups:
            refusal = self._refusal(group, cost, table, now, repeat_of, spend)
            if refusal is not None:
                return [GroupResult(refusal if g is group else None) for g in groups]
        results = [self._take(g, rid, cost, table, now, repeat, spend) for g in groups]
        if any(g.budgets for g in groups):
            self._changed()
        return results

    async def settle(self, groups: Sequence[Group], rid: str, month: str, month_end: float,
                     delta: int, used: int, release: bool, spend_delta: int = 0) -> None:
        self.settle_now(groups, rid, month, month_end, delta, used, release, spend_delta)

    def settle_now(self, groups: Sequence[Group], rid: str, month: str, month_end: float,
                   delta: int, used: int, release: bool, spend_delta: int = 0) -> None:
        table = self._months.get(month)
        changed = False
        for group in groups:
            for w in self._windows_of(group):
                w.remove(rid) if release else w.settle(rid, used)
            if group.budgets and table is not None:
                counters = table.setdefault(group.tag, {})
                change = group.amount(delta, spend_delta)
                for b in group.budgets:
                    counters[b.field] = max(0, counters.get(b.field, 0) + change)
                if release:
                    counters[MONTH_REQUESTS] = max(0, counters.get(MONTH_REQUESTS, 0) - 1)
                changed = True
        if changed:
            self._changed()

    async def peek(self, group: Group, month: str) -> tuple[dict[str, int], list[WindowState]]:
        now = self.clock()
        counters = dict(self._months.get(month, {}).get(group.tag, {}))
        states = [self._window(group.tag, s.name).state(now, s.rpm, s.tpm) for s in group.windows]
        return counters, states

    def _changed(self) -> None:
        """The month's usage changed: written within FLUSH_INTERVAL. While `_dirty`, a flusher is
        under way, so a caller that sees it set need not call this."""
        if self._path is None:
            return
        self._dirty = True
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        while self._dirty:  # a change made while a write was under way goes in the next one
            await asyncio.sleep(FLUSH_INTERVAL)
            await self.flush()

    async def flush(self) -> None:
        if self._path is None or not self._dirty:
            return
        self._dirty = False
        body = json.dumps({"version": 1, "months": self._months}, sort_keys=True)
        await asyncio.to_thread(_write_atomically, self._path, body)

    async def close(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
        self._dirty = self._dirty or self._flusher is not None
        await self.flush()


class MemoryPlan:
    """`reserve_now` and `settle_now` for a fixed tuple of groups, holding their windows and limits:
    the common case (a new request that fits) is a few comparisons and additions. Anything else,
    a refusal or a repeat admission, goes through the store's general path, which explains it.

    The request is held in its windows' slots, which the caller keeps and settles through: no rid
    index to write, look up and clean. A reservation settled with nothing is indexed then, since
    a failover admits it again by its rid (`AdmitRequest.repeat_of`)."""

    __slots__ = ("store", "windows", "limits", "counted", "requests", "tokens")

    def __init__(self, store: MemoryStore, groups: Sequence[Group]) -> None:
        self.store = store
        self.windows = tuple((store._window(g.tag, spec.name), spec.rpm, spec.tpm)
                             for g in groups for spec in g.windows)
        # Month counters: (tag, field, limit, money?) for each budget with a limit; (tag, every budget field,
        # money?): a money group counts the request's cost, the others its tokens.
        self.limits = tuple((g.tag, b.field, b.limit, g.unit == "cost") for g in groups for b in g.budgets
                            if b.limit is not None)
        self.counted = tuple((g.tag, tuple(b.field for b in g.budgets), g.unit == "cost") for g in groups if g.budgets)
        # The first group's windows with a limit, for the x-ratelimit-* headers; limits as text once.
        first = self.windows[:len(groups[0].windows)] if groups else ()
        self.requests: tuple[LimitRow, ...] = tuple((w, rpm, str(rpm)) for w, rpm, _ in first if rpm is not None)
        self.tokens: tuple[LimitRow, ...] = tuple((w, tpm, str(tpm)) for w, _, tpm in first if tpm is not None)

    def reserve(self, rid: str, cost: int, month: str,
                spend: int = 0) -> tuple[dict[str, str], list[list[Any]]] | None:
        """Reserve a new request everywhere and return the x-ratelimit-* headers of the first group
        and the slots holding it; None, with nothing reserved, when anything does not fit."""
        store = self.store
        now = store.clock()
        table = store._months.get(month)
        if table is None:
            table = store._month_table(month)
        for tag, field, limit, money in self.limits:
            if table.get(tag, _NONE).get(field, 0) + (spend if money else cost) > limit:
                return None
        windows = self.windows
        for w, rpm, tpm in windows:
            if not w.fits(now, rpm, tpm, cost):
                return None
        held = []
        for w, _, _ in windows:
            held.append(w.hold(now, rid, cost))
        if self.counted:
            for tag, fields, money in self.counted:
                counters = table.get(tag)
                if counters is None:
                    counters = table[tag] = {}
                amount = spend if money else cost
                for field in fields:
                    counters[field] = counters.get(field, 0) + amount
                counters[MONTH_REQUESTS] = counters.get(MONTH_REQUESTS, 0) + 1
            if not store._dirty:
                store._changed()
        return window_headers(self.requests, self.tokens, now), held

    def settle(self, rid: str, held: list[list[Any]], month: str, delta: int, used: int,
               spend_delta: int = 0) -> None:
        """`settle_now(groups, ..., release=False)` for a request `reserve` held in `held`: the windows
        keep `used` tokens, the month `delta` more."""
        for (w, _, _), slot in zip(self.windows, held):
            w.settle_held(slot, rid, used)
            if not used:
                w.index(slot, rid)
        if self.counted:
            table = self.store._months.get(month)
            if table is not None:
                for tag, fields, money in self.counted:
                    counters = table.get(tag)
                    if counters is None:
                        counters = table[tag] = {}
                    change = spend_delta if money else delta
                    for field in fields:
                        left = counters.get(field, 0) + change
                        counters[field] = left if left > 0 else 0
                if not self.store._dirty:
                    self.store._changed()


_NONE: dict[str, int] = {}  # the counters of a group with none yet (never written to)


def _write_atomically(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".quota-usage-")
    with os.fdopen(fd, "w") as f:
        f.write(body)
    os.replace(tmp, path)
