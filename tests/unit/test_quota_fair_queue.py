"""FairQueue: round-robin by consumer, exact waits, timeouts that drop nothing."""

from __future__ import annotations

import asyncio

import pytest

from lockgate.proxy.quota.fair_queue import FairQueue, QueueFull


class Capacity:
    """Capacity handed out by the test: try_admit succeeds only when a slot was granted."""

    def __init__(self) -> None:
        self.slots = 0
        self.served: list[str] = []
        self.released: list[str] = []
        self.asked = asyncio.Event()

    def try_admit(self, name: str):  # type: ignore[no-untyped-def]
        async def attempt() -> tuple[float | None, object]:
            self.asked.set()
            if self.slots > 0:
                self.slots -= 1
                self.served.append(name)
                return None, name
            return 0.001, None
        return attempt

    def release(self, name: str):  # type: ignore[no-untyped-def]
        async def give_back(_: object) -> None:
            self.released.append(name)
        return give_back


async def until(condition, deadline: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        assert loop.time() < end
        await asyncio.sleep(0.001)


async def test_turns_rotate_between_consumers() -> None:
    queue, cap = FairQueue(), Capacity()
    waits = [asyncio.create_task(queue.wait(c, cap.try_admit(f"{c}{i}"), cap.release(c), 5))
             for c, n in (("a", 4), ("b", 2), ("c", 1)) for i in range(n)]
    await until(lambda: queue.depth == 7)
    cap.slots = 7
    results = await asyncio.gather(*waits)
    assert cap.served == ["a0", "b0", "c0", "a1", "b1", "a2", "a3"]
    assert sorted(results) == sorted(cap.served) and queue.depth == 0


async def test_a_waiter_times_out_and_the_others_keep_their_turn() -> None:
    depths: list[int] = []
    queue, cap = FairQueue(on_depth=depths.append), Capacity()
    short = asyncio.create_task(queue.wait("a", cap.try_admit("a0"), cap.release("a"), 0.05))
    long = asyncio.create_task(queue.wait("b", cap.try_admit("b0"), cap.release("b"), 5))
    with pytest.raises(TimeoutError):
        await short
    assert queue.depth == 1
    cap.slots = 1
    assert await long == "b0"
    assert cap.served == ["b0"] and depths[-1] == 0 and max(depths) == 2


async def test_capacity_won_after_the_waiter_gave_up_is_given_back() -> None:
    queue = FairQueue()
    gate = asyncio.Event()
    released: list[object] = []

    async def slow_admit() -> tuple[float | None, object]:
        await gate.wait()
        return None, "slot"

    async def give_back(result: object) -> None:
        released.append(result)

    waiter = asyncio.create_task(queue.wait("a", slow_admit, give_back, 0.05))
    with pytest.raises(TimeoutError):
        await waiter
    gate.set()
    await until(lambda: released == ["slot"])


async def test_a_store_error_reaches_its_waiter() -> None:
    queue = FairQueue()

    async def failing() -> tuple[float | None, object]:
        raise RuntimeError("store away")

    async def nothing(_: object) -> None:
        return None

    with pytest.raises(RuntimeError, match="store away"):
        await queue.wait("a", failing, nothing, 5)
    assert queue.depth == 0


async def test_weights_give_a_consumer_that_many_turns() -> None:
    queue, cap = FairQueue(), Capacity()
    waits = [asyncio.create_task(queue.wait(c, cap.try_admit(f"{c}{i}"), cap.release(c), 5, weight=w))
             for c, w in (("a", 2), ("b", 1)) for i in range(4)]
    await until(lambda: queue.depth == 8)
    cap.slots = 6
    await until(lambda: len(cap.served) == 6)
    assert cap.served == ["a0", "b0", "a1", "b1", "a2", "a3"]  # 2 turns of a for 1 of b
    cap.slots = 2
    await asyncio.gather(*waits)


async def test_interactive_waiters_go_before_batch_ones_that_came_first() -> None:
    queue, cap = FairQueue(), Capacity()
    batch = [asyncio.create_task(queue.wait("nightly", cap.try_admit(f"batch{i}"), cap.release("n"), 5,
                                            priority="batch")) for i in range(3)]
    await until(lambda: queue.depth == 3)
    interactive = [asyncio.create_task(queue.wait(c, cap.try_admit(c), cap.release(c), 5)) for c in ("x", "y")]
    await until(lambda: queue.depth == 5)
    cap.slots = 5
    await asyncio.gather(*batch, *interactive)
    assert cap.served == ["x", "y", "batch0", "batch1", "batch2"]


async def test_a_batch_waiter_past_the_bound_is_served_before_newer_interactive_ones() -> None:
    now = [0.0]
    queue, cap = FairQueue(batch_max_delay=10.0, clock=lambda: now[0]), Capacity()
    old = asyncio.create_task(queue.wait("nightly", cap.try_admit("batch"), cap.release("n"), 5, priority="batch"))
    await until(lambda: queue.depth == 1)
    now[0] = 10.0  # the batch waiter has waited its bound
    fresh = [asyncio.create_task(queue.wait(c, cap.try_admit(c), cap.release(c), 5)) for c in ("x", "y")]
    await until(lambda: queue.depth == 3)
    cap.slots = 3
    await asyncio.gather(old, *fresh)
    assert cap.served == ["batch", "x", "y"]


async def test_a_full_queue_refuses_at_once_and_a_cancelled_waiter_leaves_at_once() -> None:
    queue, cap = FairQueue(max_depth=2), Capacity()
    first = asyncio.create_task(queue.wait("a", cap.try_admit("a0"), cap.release("a"), 5))
    second = asyncio.create_task(queue.wait("b", cap.try_admit("b0"), cap.release("b"), 5))
    await until(lambda: queue.depth == 2)
    with pytest.raises(QueueFull):
        await queue.wait("c", cap.try_admit("c0"), cap.release("c"), 5)
    first.cancel()  # the client went away
    await asyncio.gather(first, return_exceptions=True)
    assert queue.depth == 1
    cap.slots = 1
    assert await second == "b0" and cap.served == ["b0"]


async def test_wake_ends_the_pause_at_once() -> None:
    queue, cap = FairQueue(), Capacity()
    cap_wait = [60.0]

    async def attempt() -> tuple[float | None, object]:
        if cap.slots:
            cap.slots -= 1
            return None, "ok"
        return cap_wait[0], None  # the store says: long wait (MAX_PAUSE caps it)

    waiter = asyncio.create_task(queue.wait("a", attempt, cap.release("a"), 5))
    await until(lambda: queue.depth == 1)
    await asyncio.sleep(0.01)
    cap.slots = 1
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    queue.wake()
    assert await waiter == "ok"
    assert loop.time() - t0 < 0.5  # not the MAX_PAUSE of 1 s


async def test_a_waiter_cancelled_as_its_turn_comes_gives_the_capacity_back() -> None:
    tasks: list[asyncio.Task[object]] = []

    def on_depth(depth: int) -> None:
        if depth == 0 and tasks:  # the pump just handed the capacity over: the client goes away now
            tasks[0].cancel()

    queue, cap = FairQueue(on_depth=on_depth), Capacity()
    tasks.append(asyncio.create_task(queue.wait("a", cap.try_admit("a0"), cap.release("a"), 5)))
    await until(lambda: queue.depth == 1)
    cap.slots = 1
    queue.wake()
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    assert cap.served == ["a0"]
    await until(lambda: cap.released == ["a"])
