"""A deadline for the request path: `asyncio.timeout_at`'s behaviour at a fraction of its cost.

`with Deadline(loop, when):` cancels the task running the block at `when`
(loop time) and turns that cancellation into TimeoutError as it leaves the
block; a cancellation from anyone else (the client going away, the drain)
passes through untouched, as with `asyncio.timeout_at`. It costs one timer
and no more: the running loop and task are handed in or looked up once
(on Python 3.11 each `asyncio.get_running_loop()` is a `getpid` system
call), and a plain `with` makes no coroutine to enter or leave it.
Every request sets one or two of these, so the difference shows.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class Deadline:
    __slots__ = ("_loop", "_task", "_handle", "_cancelling", "_expired")

    def __init__(self, loop: asyncio.AbstractEventLoop, when: float, task: asyncio.Task[object] | None = None) -> None:
        found = task if task is not None else asyncio.current_task(loop)
        if found is None:
            raise RuntimeError("Deadline is used inside a task")
        self._loop = loop
        self._task = found
        self._cancelling = found.cancelling()
        self._expired = False
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = self._schedule(when)

    def reschedule(self, when: float) -> None:
        """Move the deadline (the block keeps running)."""
        if self._expired:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._schedule(when)

    def _schedule(self, when: float) -> asyncio.TimerHandle | asyncio.Handle:
        loop = self._loop
        return loop.call_at(when, self._expire) if when > loop.time() else loop.call_soon(self._expire)

    def _expire(self) -> None:
        self._handle = None
        self._expired = True
        self._task.cancel()

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        # Ours only when no one else asked for a cancel in the meantime (asyncio.timeout's rule).
        if self._expired and self._task.uncancel() <= self._cancelling and kind is asyncio.CancelledError:
            raise TimeoutError from exc
