"""Requests a draining proxy may end: each handler that could outlive the drain
registers its task here, and the drain ends them at its deadline.

The drain cancels a registered task and remembers that it did; the handler,
catching the cancellation, asks `ended(task)` and, when it was the drain,
finishes its answer properly (an OpenAI error event, an OpenAI error body, a
closed event stream) instead of dropping the connection. A cancellation for
any other reason (the client went away) is not the drain's, and propagates.

Some streams only wait for news (an MCP client's standalone GET stream, a
legacy SSE channel with nothing pending): they are `idle`, and end when the
drain starts, so that their clients reconnect to a replica that stays.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Idle = Callable[[], bool]  # True while the stream only waits for news
RECHECK = 0.5  # seconds between looks at the idle streams while a drain waits


class OpenRequests:
    def __init__(self) -> None:
        self._running: dict[asyncio.Task[Any], Idle | None] = {}
        self._ended: set[asyncio.Task[Any]] = set()
        self._finished: asyncio.Event | None = None  # set when a request finishes, while a drain waits

    def finished(self) -> None:
        """A request (registered or not) finished: a waiting drain looks again."""
        if self._finished is not None:
            self._finished.set()

    async def wait_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until `done()` holds, looking again each time a request finishes, and every RECHECK
        seconds (a stream may turn idle with no request finishing); False at the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._finished = finished = asyncio.Event()
        try:
            while not done():
                left = deadline - loop.time()
                if left <= 0:
                    return False
                finished.clear()
                try:
                    await asyncio.wait_for(finished.wait(), min(left, RECHECK))
                except TimeoutError:
                    pass
            return True
        finally:
            self._finished = None

    def enter(self, idle: Idle | None = None, task: asyncio.Task[Any] | None = None) -> asyncio.Task[Any]:
        """Register the current task (`task` when the caller knows it: aiohttp's `request.task`) until `leave`."""
        if task is None:
            task = asyncio.current_task()
            assert task is not None, "called from a handler"
        self._running[task] = idle
        return task

    def leave(self, task: asyncio.Task[Any]) -> None:
        self._running.pop(task, None)
        self._ended.discard(task)
        self.finished()

    def ended(self, task: asyncio.Task[Any]) -> bool:
        """Whether the drain cancelled `task`; if so the cancellation is taken back, so the
        handler can still write the end of its answer."""
        if task not in self._ended:
            return False
        self._ended.discard(task)
        task.uncancel()
        return True

    def end(self, *, idle_only: bool) -> int:
        """Cancel the registered tasks (only those idle now, with `idle_only`); how many."""
        count = 0
        for task, idle in list(self._running.items()):
            if task in self._ended or task.done():
                continue
            if idle_only and (idle is None or not idle()):
                continue
            self._ended.add(task)
            task.cancel()
            count += 1
        return count

    @property
    def busy(self) -> int:
        """Registered requests that are not idle now."""
        return sum(1 for idle in self._running.values() if idle is None or not idle())

    @property
    def running(self) -> int:
        return len(self._running)


OPEN_REQUESTS = web.AppKey("lockgate_open_requests", OpenRequests)


async def until_ended(request: web.Request, pump: Awaitable[None], idle: Idle | None = None) -> bool:
    """Run `pump` (what writes a streamed answer) as a registered request: True when the drain
    ended it (the caller then closes its answer properly), False when it finished by itself.
    An app with no registry (an embedding of the MCP routes alone) just runs it."""
    open_requests = request.app.get(OPEN_REQUESTS)
    if open_requests is None:
        await pump
        return False
    task = open_requests.enter(idle)
    try:
        await pump
        return False
    except asyncio.CancelledError:
        if open_requests.ended(task):
            return True
        raise
    finally:
        open_requests.leave(task)
