"""A queue for scarce capacity (a provider model's rpm/tpm, an endpoint's concurrency slots),
fair across consumers, weighted, with two priority classes.

Waiters are grouped by priority class, then by consumer. The next waiter offered
capacity is the oldest waiter of the consumer whose turn it is in the `interactive`
class; `batch` waiters go only when no interactive one waits, except that a batch
waiter that has waited `batch_max_delay` is served next (so batch never starves
for longer than that). Within a class, consumers take turns by stride scheduling:
a consumer of weight w gets w turns for every one turn of a consumer of weight 1.

The pump asks the chosen waiter's `try_admit`; when there is no capacity it sleeps
the wait the store reported (at most MAX_PAUSE), or until `wake()` says capacity
was freed or a waiter arrived. A waiter whose deadline passes, or whose caller is
cancelled (a client that went away), leaves at once; none is dropped silently.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

MIN_PAUSE = 0.005  # seconds; keeps a pump from spinning when a wait rounds to zero
MAX_PAUSE = 1.0  # re-check at least this often (capacity may be freed elsewhere)
DEFAULT_BATCH_MAX_DELAY = 30.0

Priority = Literal["interactive", "batch"]
PRIORITIES: tuple[Priority, ...] = ("interactive", "batch")

# Offered capacity: returns (None, result) when admitted, or (wait seconds, None).
TryAdmit = Callable[[], Awaitable[tuple[float | None, Any]]]
Release = Callable[[Any], Awaitable[None]]


class QueueFull(Exception):
    """The queue holds `max_depth` waiters already: the request is refused at once."""


@dataclass(eq=False, slots=True)
class _Waiter:
    try_admit: TryAdmit
    release: Release
    consumer: str
    priority: Priority
    since: float
    future: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    gone: bool = False  # served, timed out or cancelled: no longer in any queue


@dataclass(slots=True)
class _Turn:
    """A consumer with waiters in one class: its waiters, oldest first, and its place in the turns."""

    waiters: deque[_Waiter]
    weight: int
    passed: float  # virtual time of its next turn (stride scheduling)
    order: int  # ties go to the consumer served longest ago (or that joined first)


class _Class:
    """The waiters of one priority class: consumers in weighted turns."""

    def __init__(self) -> None:
        self.turns: dict[str, _Turn] = {}
        self.clock = 0.0  # the virtual time of the last turn taken; a consumer that joins starts there
        self.fifo: deque[_Waiter] = deque()  # every waiter by arrival (the oldest is found here)

    def add(self, waiter: _Waiter, weight: int, order: int) -> None:
        turn = self.turns.get(waiter.consumer)
        if turn is None:
            turn = self.turns[waiter.consumer] = _Turn(deque(), max(1, weight), self.clock, order)
        turn.waiters.append(waiter)
        self.fifo.append(waiter)

    def next(self) -> _Waiter | None:
        best: _Turn | None = None
        for turn in self.turns.values():  # consumers with waiters: a few, bounded by configuration
            if best is None or (turn.passed, turn.order) < (best.passed, best.order):
                best = turn
        return best.waiters[0] if best is not None else None

    def oldest(self) -> _Waiter | None:
        fifo = self.fifo
        while fifo and fifo[0].gone:
            fifo.popleft()
        return fifo[0] if fifo else None

    def served(self, waiter: _Waiter, order: int) -> None:
        """`waiter` took capacity: its consumer's next turn moves on by 1/weight."""
        turn = self.turns[waiter.consumer]
        self.clock = max(self.clock, turn.passed)
        turn.passed += 1.0 / turn.weight
        turn.order = order
        self.remove(waiter)

    def remove(self, waiter: _Waiter) -> bool:
        turn = self.turns.get(waiter.consumer)
        if turn is None or waiter not in turn.waiters:
            return False
        turn.waiters.remove(waiter)
        waiter.gone = True
        if not turn.waiters:
            del self.turns[waiter.consumer]
        return True


class FairQueue:
    def __init__(self, on_depth: Callable[[int], None] | None = None, max_depth: int | None = None,
                 batch_max_delay: float = DEFAULT_BATCH_MAX_DELAY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._classes: dict[Priority, _Class] = {p: _Class() for p in PRIORITIES}
        self._orders = itertools.count()
        self._pump: asyncio.Task[None] | None = None
        self._releases: set[asyncio.Future[None]] = set()
        self._wake = asyncio.Event()
        self._on_depth = on_depth or (lambda n: None)
        self.max_depth = max_depth
        self.batch_max_delay = batch_max_delay
        self.clock = clock
        self.depth = 0

    def wake(self) -> None:
        """Capacity may have been freed: the pump asks again now instead of at the end of its pause."""
        self._wake.set()

    async def wait(self, consumer: str, try_admit: TryAdmit, release: Release, timeout: float,
                   priority: Priority = "interactive", weight: int = 1) -> Any:
        """The result of `try_admit` once it succeeds in this consumer's turn; TimeoutError after
        `timeout`; QueueFull at once when `max_depth` waiters wait already."""
        if self.max_depth is not None and self.depth >= self.max_depth:
            raise QueueFull
        waiter = _Waiter(try_admit, release, consumer, priority, self.clock())
        self._classes[priority].add(waiter, weight, next(self._orders))
        self._set_depth(self.depth + 1)
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._run())
        else:
            self._wake.set()  # a newcomer may go first (a higher class): the pump chooses again
        try:
            await asyncio.wait({waiter.future}, timeout=timeout)
        except BaseException:  # cancelled (the client went away) just as its turn came: give the capacity back
            future = waiter.future
            if future.done() and not future.cancelled() and future.exception() is None:
                self._give_back(waiter, future.result())
            raise
        finally:
            if not waiter.future.done():
                waiter.future.cancel()  # the pump skips it and releases anything admitted meanwhile
                self._forget(waiter)
        if waiter.future.cancelled():
            raise TimeoutError
        return waiter.future.result()

    def _give_back(self, waiter: _Waiter, result: Any) -> None:
        task: asyncio.Future[None] = asyncio.ensure_future(waiter.release(result))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    def _forget(self, waiter: _Waiter) -> None:
        if self._classes[waiter.priority].remove(waiter):
            self._set_depth(self.depth - 1)

    def _set_depth(self, depth: int) -> None:
        self.depth = depth
        self._on_depth(depth)

    def _head(self) -> _Waiter | None:
        """Who is offered capacity next: an aged batch waiter, else interactive turns, else batch turns."""
        batch = self._classes["batch"]
        oldest = batch.oldest()
        if oldest is not None and self.clock() - oldest.since >= self.batch_max_delay:
            return oldest
        return self._classes["interactive"].next() or batch.next()

    async def _run(self) -> None:
        while (waiter := self._head()) is not None:
            self._wake.clear()  # a release from here on interrupts the pause below
            try:
                wait, result = await waiter.try_admit()
            except Exception as e:  # the store failed: this waiter learns why, the queue goes on
                if not waiter.future.done():
                    waiter.future.set_exception(e)
                    self._forget(waiter)
                continue
            if wait is None:
                if waiter.future.done():  # gave up while we were asking
                    await waiter.release(result)
                    continue
                waiter.future.set_result(result)
                self._classes[waiter.priority].served(waiter, next(self._orders))
                self._set_depth(self.depth - 1)
                continue
            try:
                async with asyncio.timeout(min(MAX_PAUSE, max(MIN_PAUSE, wait))):
                    await self._wake.wait()
            except TimeoutError:
                pass
