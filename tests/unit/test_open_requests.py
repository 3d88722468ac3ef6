"""What a draining proxy ends: idle streams at once, the rest at the deadline, and only those."""

from __future__ import annotations

import asyncio

from lockgate.proxy.streams import OpenRequests


async def handler(requests: OpenRequests, idle: bool, outcome: list[str], release: asyncio.Event) -> None:
    task = requests.enter((lambda: True) if idle else None)
    try:
        await release.wait()
        outcome.append("finished")
    except asyncio.CancelledError:
        if not requests.ended(task):
            raise
        await asyncio.sleep(0)  # the cancellation was taken back: the handler may still await
        outcome.append("ended properly")
    finally:
        requests.leave(task)


async def test_idle_streams_end_first_then_the_rest_and_nothing_else_is_swallowed() -> None:
    requests = OpenRequests()
    release = asyncio.Event()
    idle_out: list[str] = []
    busy_out: list[str] = []
    idle = asyncio.create_task(handler(requests, True, idle_out, release))
    busy = asyncio.create_task(handler(requests, False, busy_out, release))
    await asyncio.sleep(0)
    assert (requests.running, requests.busy) == (2, 1)

    assert requests.end(idle_only=True) == 1
    await idle
    assert idle_out == ["ended properly"] and not busy.done()
    assert not await requests.wait_until(lambda: requests.busy == 0, 0.05)  # still running: timed out

    assert requests.end(idle_only=False) == 1
    await busy
    assert busy_out == ["ended properly"] and requests.running == 0

    # A cancellation that is not the drain's (a client going away) propagates.
    other = asyncio.create_task(handler(requests, False, [], asyncio.Event()))
    await asyncio.sleep(0)
    other.cancel()
    await asyncio.gather(other, return_exceptions=True)
    assert other.cancelled() and requests.running == 0


async def test_a_waiting_drain_wakes_when_a_request_finishes() -> None:
    requests = OpenRequests()
    release = asyncio.Event()
    out: list[str] = []
    task = asyncio.create_task(handler(requests, False, out, release))
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    loop.call_later(0.05, release.set)
    assert await requests.wait_until(lambda: requests.running == 0, 10)
    assert loop.time() - started < 0.4  # woken by the finish, not by the periodic look
    assert out == ["finished"]
    await task
