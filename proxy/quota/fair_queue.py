"""A queue for a provider model's capacity, fair across consumers.

Waiters are grouped by consumer and served round-robin: the head waiter of the
next consumer is offered capacity; when there is none, the pump sleeps the
exact wait the store reported and tries again. A waiter whose deadline passes
leaves with a timeout; none is dropped silently.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

MIN_PAUSE = 0.005  # seconds; keeps a pump from spinning when a wait rounds to zero
MAX_PAUSE = 1.0  # re-check at least this often (capacity may be freed by a release)

# Offered capacity: returns (None, result) when admitted, or (wait seconds, None).
TryAdmit = Callable[[], Awaitable[tuple[float | None, Any]]]
Release = Callable[[Any], Awaitable[None]]


@dataclass
class _Waiter:
    try_admit: TryAdmit
    release: Release
    future: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class FairQueue:
    def __init__(self, on_depth: Callable[[int], None] | None = None) -> None:
        self._by_consumer: dict[str, deque[_Waiter]] = {}
        self._turns: deque[str] = deque()  # consumers with waiters, next to serve first
        self._pump: asyncio.Task[None] | None = None
        self._on_depth = on_depth or (lambda n: None)
        self.depth = 0

    async def wait(self, consumer: str, try_admit: TryAdmit, release: Release, timeout: float) -> Any:
        """The result of `try_admit` once it succeeds in this consumer's turn; TimeoutError after `timeout`."""
        waiter = _Waiter(try_admit, release)
        if consumer not in self._by_consumer:
            self._by_consumer[consumer] = deque()
            self._turns.append(consumer)
        self._by_consumer[consumer].append(waiter)
        self._set_depth(self.depth + 1)
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._run())
        try:
            await asyncio.wait({waiter.future}, timeout=timeout)
        finally:
            if not waiter.future.done():
                waiter.future.cancel()  # the pump skips it and releases anything admitted meanwhile
                self._forget(consumer, waiter)
        if waiter.future.cancelled():
            raise TimeoutError
        return waiter.future.result()

    def _forget(self, consumer: str, waiter: _Waiter) -> None:
        queue = self._by_consumer.get(consumer)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            self._set_depth(self.depth - 1)
            if not queue:
                del self._by_consumer[consumer]
                self._turns.remove(consumer)

    def _set_depth(self, depth: int) -> None:
        self.depth = depth
        self._on_depth(depth)

    async def _run(self) -> None:
        while self._turns:
            consumer = self._turns[0]
            waiter = self._by_consumer[consumer][0]
            try:
                wait, result = await waiter.try_admit()
            except Exception as e:  # the store failed: this waiter learns why, the queue goes on
                if not waiter.future.done():
                    waiter.future.set_exception(e)
                    self._forget(consumer, waiter)
                continue
            if wait is None:
                if waiter.future.done():  # gave up while we were asking
                    await waiter.release(result)
                    continue
                waiter.future.set_result(result)
                self._forget(consumer, waiter)
                if consumer in self._by_consumer:  # its next waiter goes to the back of the line
                    self._turns.remove(consumer)
                    self._turns.append(consumer)
                continue
            await asyncio.sleep(min(MAX_PAUSE, max(MIN_PAUSE, wait)))
