"""Sliding-window log for requests and tokens per window: pure arithmetic.

Each admitted request is an entry (time, tokens). A request fits when the
entries younger than one window, plus itself, stay within rpm and tpm. The
wait after a refusal is the time until enough old entries leave the window.
In memory, entries admitted within a millisecond share a slot and leave with
its last one (never early, so a limit is never exceeded); the Redis Lua
scripts keep one entry per request.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

TOO_LARGE = float("inf")  # a request that can never fit (tokens > tpm)


@dataclass(slots=True)  # made per request: a frozen dataclass costs 5x to build
class WindowState:
    """One window's load after a check, for headers and usage reports."""

    rpm: int | None
    tpm: int | None
    requests: int  # admitted requests inside the window
    tokens: int  # tokens reserved or used inside the window
    reset_requests: float  # seconds until the oldest request leaves the window
    reset_tokens: float  # seconds until the oldest tokens leave the window


def requests_wait(times: list[float], now: float, length: float, rpm: int) -> float:
    """Seconds until one more request fits; 0 when it fits now. `times` oldest first, all in the window."""
    if len(times) < rpm:
        return 0.0
    if rpm <= 0:
        return TOO_LARGE
    # The (len - rpm + 1)-th oldest entry must leave before one more fits.
    return max(0.0, times[len(times) - rpm] + length - now)


def tokens_wait(entries: list[tuple[float, int]], total: int, now: float, length: float, tpm: int,
                cost: int) -> float:
    """Seconds until `cost` more tokens fit under `tpm`; entries oldest first, all in the window."""
    if total + cost <= tpm:
        return 0.0
    if cost > tpm:
        return TOO_LARGE
    need = total + cost - tpm
    freed = 0
    for at, tokens in entries:
        freed += tokens
        if freed >= need:
            return max(0.0, at + length - now)
    return length  # unreachable when total is the sum of entries; stay safe


SLOT = 0.001  # seconds: requests admitted this close together share one slot of the log


class SlidingWindow:
    """The in-memory log of one window scope (a key, a key's model, a provider model).

    Requests admitted within SLOT of each other share one slot [first, last, tokens, {rid: tokens}],
    so the log holds slots, not requests, and its totals are kept as it changes. A slot leaves the
    window when its last request does: never earlier than exact, at most SLOT later, and holds
    nobody once it left.

    `add` indexes a request by its rid, for `settle`, `remove` and repeat admissions. `hold` does
    not: its caller keeps the slot and settles through it (`settle_held`), and indexes the request
    (`index`) only if it may be found by rid later. That spares the busiest path an index entry.
    """

    __slots__ = ("length", "slots", "where", "count", "total")

    def __init__(self, length: float) -> None:
        self.length = length
        self.slots: deque[list[Any]] = deque()  # oldest first
        self.where: dict[str, list[Any]] = {}  # rid -> its slot, for the requests indexed
        self.count = 0  # requests inside the window
        self.total = 0  # tokens inside the window

    def __len__(self) -> int:
        return self.count

    def admitted_at(self, rid: str) -> float | None:
        """When the slot holding `rid` opened (its first request); None once it left."""
        slot = self.where.get(rid)
        return None if slot is None else slot[0]

    def prune(self, now: float) -> None:
        horizon = now - self.length
        slots = self.slots
        where = self.where
        while slots and (slots[0][1] <= horizon or not slots[0][3]):
            _, _, tokens, members = slots.popleft()
            self.count -= len(members)
            self.total -= tokens
            if where:
                for rid in members:
                    where.pop(rid, None)
            members.clear()  # whoever still holds the slot settles nothing in it

    def wait(self, now: float, rpm: int | None, tpm: int | None, cost: int,
             repeat_of: str = "") -> tuple[str, float] | None:
        """None when the request fits, else (which limit, seconds to wait). O(1) when it fits.
        `repeat_of`: a request already in the window is not counted again, only its tokens change."""
        self.prune(now)
        held = self.where.get(repeat_of) if repeat_of else None
        if held is not None:
            rpm, cost = None, cost - held[3][repeat_of]
        if rpm is not None and self.count >= rpm:
            if rpm <= 0:
                return "requests", TOO_LARGE
            return "requests", self._until_freed(now, self.count - rpm + 1, 3)
        if tpm is not None and self.total + cost > tpm:
            if cost > tpm:
                return "tokens", TOO_LARGE
            return "tokens", self._until_freed(now, self.total + cost - tpm, 2)
        return None

    def fits(self, now: float, rpm: int | None, tpm: int | None, cost: int) -> bool:
        """`wait(...) is None` for a new request, without working out the wait: the admission fast path."""
        slots = self.slots
        if slots and (slots[0][1] <= now - self.length or not slots[0][3]):
            self.prune(now)
        return (rpm is None or self.count < rpm) and (tpm is None or self.total + cost <= tpm)

    def _until_freed(self, now: float, need: int, field: int) -> float:
        """Seconds until the oldest slots free `need` requests (field 3) or tokens (field 2)."""
        freed = 0
        for slot in self.slots:
            freed += len(slot[3]) if field == 3 else slot[2]
            if freed >= need:
                return max(0.0, slot[1] + self.length - now)
        return self.length  # unreachable while the totals match the slots; stay safe

    def add_again(self, now: float, rid: str, tokens: int) -> None:
        """Reserve for a request that may already be in the window: it keeps its place and count."""
        if rid in self.where:
            self.settle(rid, tokens)
        else:
            self.add(now, rid, tokens)

    def add(self, now: float, rid: str, tokens: int) -> None:
        self.where[rid] = self.hold(now, rid, tokens)

    def hold(self, now: float, rid: str, tokens: int) -> list[Any]:
        """`add` without the index: returns the slot, which the caller keeps to settle through."""
        slots = self.slots
        slot = slots[-1] if slots else None
        if slot is not None and now - slot[0] < SLOT:
            if now > slot[1]:
                slot[1] = now
        else:
            slot = [now, now, 0, {}]
            slots.append(slot)
        slot[2] += tokens
        slot[3][rid] = tokens
        self.count += 1
        self.total += tokens
        return slot

    def index(self, slot: list[Any], rid: str) -> None:
        """Make a request held in `slot` findable by its rid while it is in the window."""
        if rid in slot[3]:
            self.where[rid] = slot

    def settle(self, rid: str, tokens: int) -> None:
        """Replace a reservation by the tokens really used (no-op once it left the window)."""
        slot = self.where.get(rid)
        if slot is not None:
            self.settle_held(slot, rid, tokens)

    def settle_held(self, slot: list[Any], rid: str, tokens: int) -> None:
        """`settle` for a request held in `slot` (no-op once it left the window)."""
        members = slot[3]
        held = members.get(rid)
        if held is not None:
            members[rid] = tokens
            slot[2] += tokens - held
            self.total += tokens - held

    def remove(self, rid: str) -> None:
        slot = self.where.pop(rid, None)
        if slot is not None:
            tokens = slot[3].pop(rid)
            slot[2] -= tokens
            self.count -= 1
            self.total -= tokens

    def state(self, now: float, rpm: int | None, tpm: int | None) -> WindowState:
        self.prune(now)
        reset = max(0.0, self.slots[0][1] + self.length - now) if self.count else 0.0
        return WindowState(rpm, tpm, self.count, self.total, reset, reset)
