"""Sliding-window log for requests and tokens per window: pure arithmetic.

Each admitted request is an entry (time, tokens). A request fits when the
entries younger than one window, plus itself, stay within rpm and tpm. The
wait after a refusal is exact: the time until enough old entries leave the
window. The Redis Lua scripts implement the same rules.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

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


class SlidingWindow:
    """The in-memory log of one window scope (a key, a key's model, a provider model)."""

    def __init__(self, length: float) -> None:
        self.length = length
        self.entries: OrderedDict[str, tuple[float, int]] = OrderedDict()  # rid -> (time, tokens), oldest first
        self.total = 0

    def prune(self, now: float) -> None:
        horizon = now - self.length
        while self.entries:
            rid, (at, tokens) = next(iter(self.entries.items()))
            if at > horizon:
                break
            del self.entries[rid]
            self.total -= tokens

    def wait(self, now: float, rpm: int | None, tpm: int | None, cost: int,
             repeat_of: str = "") -> tuple[str, float] | None:
        """None when the request fits, else (which limit, seconds to wait). O(1) when it fits.
        `repeat_of`: a request already in the window is not counted again, only its tokens change."""
        self.prune(now)
        held = self.entries.get(repeat_of) if repeat_of else None
        if held is not None:
            rpm, cost = None, cost - held[1]
        if rpm is not None and len(self.entries) >= rpm:
            return "requests", requests_wait([at for at, _ in self.entries.values()], now, self.length, rpm)
        if tpm is not None and self.total + cost > tpm:
            return "tokens", tokens_wait(list(self.entries.values()), self.total, now, self.length, tpm, cost)
        return None

    def add_again(self, now: float, rid: str, tokens: int) -> None:
        """Reserve for a request that may already be in the window: it keeps its place and count."""
        if rid in self.entries:
            self.settle(rid, tokens)
        else:
            self.add(now, rid, tokens)

    def add(self, now: float, rid: str, tokens: int) -> None:
        self.entries[rid] = (now, tokens)
        self.total += tokens

    def settle(self, rid: str, tokens: int) -> None:
        """Replace a reservation by the tokens really used (no-op once it left the window)."""
        entry = self.entries.get(rid)
        if entry is not None:
            self.entries[rid] = (entry[0], tokens)
            self.total += tokens - entry[1]

    def remove(self, rid: str) -> None:
        entry = self.entries.pop(rid, None)
        if entry is not None:
            self.total -= entry[1]

    def state(self, now: float, rpm: int | None, tpm: int | None) -> WindowState:
        self.prune(now)
        oldest = next(iter(self.entries.values()))[0] if self.entries else now - self.length
        reset = max(0.0, oldest + self.length - now) if self.entries else 0.0
        return WindowState(rpm, tpm, len(self.entries), self.total, reset, reset)
