"""The interface both quota stores implement (memory: one replica; Redis: shared)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from lockgate.proxy.quota.plan import Group, GroupResult
from lockgate.proxy.quota.window import WindowState


class StoreUnavailable(Exception):
    """The shared store did not answer: refused the connection (`timed_out` False) or was too slow."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class QuotaStore(Protocol):
    async def reserve(self, groups: Sequence[Group], rid: str, cost: int, month: str,
                      month_end: float, repeat: bool = False, spend: int = 0) -> list[GroupResult]:
        """Check every group and reserve in all of them, or in none: when one refuses, its result
        carries the refusal and the others hold nothing. One round trip on a single Redis.
        `cost` is the request's tokens, `spend` its money (micro-units): each group's budgets count
        the one of their unit (`Group.unit`), windows count tokens.
        `repeat`: `rid` was admitted before (a failover): a window that still holds it does not count
        the request again (its tokens are replaced), and the month's request count stays."""
        ...

    async def settle(self, groups: Sequence[Group], rid: str, month: str, month_end: float,
                     delta: int, used: int, release: bool, spend_delta: int = 0) -> None:
        """Replace the reservation by `used` tokens (delta = used - reserved on the month counters,
        spend_delta the same in money on money groups), or undo it entirely when `release` (the
        request was never served)."""
        ...

    async def peek(self, group: Group, month: str) -> tuple[dict[str, int], list[WindowState]]:
        """Month counters and window states of a group, without changing them."""
        ...

    async def close(self) -> None: ...
