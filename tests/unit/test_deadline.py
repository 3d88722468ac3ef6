"""Deadline: asyncio.timeout_at's behaviour on the request path."""

from __future__ import annotations

import asyncio

import pytest

from lockgate.proxy.deadline import Deadline


async def test_the_block_times_out_at_the_deadline() -> None:
    loop = asyncio.get_running_loop()
    never = loop.create_future()
    start = loop.time()
    with pytest.raises(TimeoutError):
        with Deadline(loop, start + 0.05):
            await never
    assert loop.time() - start >= 0.05
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]  # the cancel was taken back


async def test_a_block_that_ends_in_time_is_left_alone() -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(done.set_result, 7)
    with Deadline(loop, loop.time() + 10) as deadline:
        assert await done == 7
    assert deadline._handle is None  # the timer is gone with the block


async def test_a_past_deadline_fires_at_the_first_await() -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        with Deadline(loop, loop.time() - 1):
            await asyncio.sleep(1)


async def test_reschedule_moves_the_deadline() -> None:
    loop = asyncio.get_running_loop()
    first = loop.create_future()
    loop.call_later(0.05, first.set_result, None)
    start = loop.time()
    with pytest.raises(TimeoutError):
        with Deadline(loop, start + 0.02) as deadline:
            deadline.reschedule(start + 10)  # later: the first wait outlives the first deadline
            await first
            deadline.reschedule(start + 0.1)  # sooner again: the next wait is cut
            await loop.create_future()
    assert 0.1 <= loop.time() - start < 5


async def cancel_inside(delay: float) -> None:
    """Cancel a task waiting inside a Deadline `delay` seconds from now, as its owner would."""
    loop = asyncio.get_running_loop()
    entered = asyncio.Event()

    async def guarded() -> None:
        with Deadline(loop, loop.time() + delay):
            entered.set()
            await loop.create_future()

    task = asyncio.create_task(guarded())
    await entered.wait()  # with delay 0, the deadline's callback is queued ahead of this wake-up
    task.cancel()
    await task


async def test_someone_elses_cancel_is_not_a_timeout() -> None:
    with pytest.raises(asyncio.CancelledError):
        await cancel_inside(10)


async def test_a_cancel_arriving_with_the_deadline_stays_a_cancel() -> None:
    """The deadline fired and the task was also cancelled by its owner: the cancel wins, as with asyncio.timeout."""
    with pytest.raises(asyncio.CancelledError):
        await cancel_inside(0)


async def test_a_given_task_is_the_one_cancelled() -> None:
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    assert me is not None
    with pytest.raises(TimeoutError):
        with Deadline(loop, loop.time() + 0.01, task=me):
            await loop.create_future()


def test_outside_a_task_it_refuses() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(RuntimeError):
            Deadline(loop, 0.0)
    finally:
        loop.close()
