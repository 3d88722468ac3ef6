"""Leases of a shared store's capacity (lockgate.proxy.quota.lease), without Redis: the arithmetic,
and a plan's decisions against a store that records what it is asked (the Redis side is tested in
tests/integration/quota/test_quota_redis_leases.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from lockgate.proxy.quota.headers import ratelimit_headers
from lockgate.proxy.quota.lease import (BUSY, FIRST_SIZE, MIN_SIZE, Lease, LeaseBook, LeasePlan, end_of_month, fits,
                                        header_rows, lease_seconds, life_ms, next_size, return_arguments)
from lockgate.proxy.quota.plan import BudgetSpec, Group, WindowSpec
from lockgate.proxy.quota.window import WindowState

GROUPS = (Group("key:ns/a", (WindowSpec("all", 1000, 100_000),), (BudgetSpec("tokens", None),)),)
MONTH = "2026-12"


class RecordingStore:
    """Answers nothing by itself: the test resolves each LEASE and sees each RETURN."""

    window = 60.0

    def __init__(self) -> None:
        self.asked: list[tuple[Lease, asyncio.Future[Any]]] = []
        self.returned: list[Lease] = []

    def ask_lease(self, groups: Sequence[Group], lease: Lease) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.asked.append((lease, future))
        return future

    def give_back(self, groups: Sequence[Group], lease: Lease, failed: Callable[[Exception], None]) -> None:
        self.returned.append(lease)


def make_plan() -> tuple[LeasePlan, RecordingStore, list[tuple[Any, ...]]]:
    store = RecordingStore()
    late: list[tuple[Any, ...]] = []
    plan = LeaseBook(store).plan(GROUPS, lambda: True, lambda *a: late.append(a), lambda *a: None)
    return plan, store, late


def grant(store: RecordingStore, requests_in_window: int = 0) -> Lease:
    lease, future = store.asked[-1]
    future.set_result([1, 1_000, requests_in_window + lease.size, 10 * requests_in_window + lease.tokens, 60_000, 0])
    return lease


async def granted(plan: LeasePlan, store: RecordingStore, requests_in_window: int = 0) -> Lease:
    for i in range(BUSY):
        assert plan.reserve(f"busy{i}", 10, MONTH) is None
    lease = grant(store, requests_in_window)
    await asyncio.sleep(0)  # the answer's callback runs
    return lease


async def test_a_plan_asks_for_a_lease_once_busy_and_admits_from_it() -> None:
    plan, store, _ = make_plan()
    for i in range(BUSY - 1):
        assert plan.reserve(f"r{i}", 10, MONTH) is None
    assert store.asked == []  # not busy yet: each request goes to Redis alone
    assert plan.reserve("r", 10, MONTH) is None
    assert len(store.asked) == 1 and store.asked[0][0].size == FIRST_SIZE
    assert store.asked[0][0].tokens == FIRST_SIZE * 10  # room for requests like the ones seen
    grant(store, requests_in_window=100)
    await asyncio.sleep(0)
    taken = plan.reserve("x", 10, MONTH)
    assert taken is not None
    headers, lease = taken
    assert lease.uses == {"x": [10, 0]}
    # The window held 100 requests before the lease: this one is the 101st, the unused block is not counted.
    assert headers["x-ratelimit-remaining-requests"] == str(1000 - 101)
    assert headers["x-ratelimit-remaining-tokens"] == str(100_000 - 1010)
    assert plan.reserve("big", 10_000, MONTH) is None  # does not fit what is left: the lease goes back
    assert store.returned == [lease] and not lease.open


async def test_a_spare_is_asked_at_half_and_takes_over_when_the_lease_runs_out() -> None:
    plan, store, _ = make_plan()
    first = await granted(plan, store)
    for i in range(FIRST_SIZE // 2):
        assert plan.reserve(f"a{i}", 10, MONTH) is not None
    assert len(store.asked) == 2  # the spare, asked while the lease was half used
    spare = grant(store)
    await asyncio.sleep(0)
    for i in range(FIRST_SIZE // 2):
        assert plan.reserve(f"b{i}", 10, MONTH) is not None
    taken = plan.reserve("c", 10, MONTH)  # the first is used up: returned, the spare serves
    assert taken is not None and taken[1] is spare
    assert store.returned == [first] and len(first.uses) == FIRST_SIZE
    assert plan.size == 2 * FIRST_SIZE  # it ran out: the next is twice the size


async def test_settling_counts_in_the_open_lease_or_in_redis_once_it_went_back() -> None:
    plan, store, late = make_plan()
    lease = await granted(plan, store)
    taken = [plan.reserve(f"r{i}", 10, MONTH) for i in range(3)]
    assert all(t is not None for t in taken)
    plan.settle("r0", lease, MONTH, -4, 6)
    assert lease.uses["r0"] == [6, 1] and lease.used_tokens == 26
    plan.settle("r1", lease, MONTH, -10, 0)
    assert lease.uses["r1"] == [0, 0]  # settled with nothing: a failover may admit it again by its id
    assert return_arguments(lease) == [3, 6, 2, "r1", 0, "r2", 10]
    plan.retire(lease)
    plan.settle("r2", lease, MONTH, -3, 7)
    assert late == [(GROUPS, "r2", MONTH, lease.month_end, -3, 7, False, 0)]


async def test_a_refused_lease_shrinks_the_next_and_the_smallest_waits_a_while() -> None:
    plan, store, _ = make_plan()
    for i in range(BUSY):
        plan.reserve(f"r{i}", 10, MONTH)
    size = plan.size
    while True:
        store.asked[-1][1].set_result([0])
        await asyncio.sleep(0)
        if plan.size == MIN_SIZE and size == MIN_SIZE:
            break
        size = plan.size
        for i in range(BUSY):
            plan.reserve(f"again{i}", 10, MONTH)
    asked = len(store.asked)
    for i in range(BUSY):
        plan.reserve(f"quiet{i}", 10, MONTH)
    assert len(store.asked) == asked  # too close to a limit: one by one for a lease's life


async def test_a_lease_whose_answer_was_lost_is_returned_empty() -> None:
    plan, store, _ = make_plan()
    for i in range(BUSY):
        plan.reserve(f"r{i}", 10, MONTH)
    lease, future = store.asked[0]
    future.set_exception(ConnectionError("gone"))
    await asyncio.sleep(0)
    assert store.returned == [lease] and lease.size == 0 and plan.lease is None


async def test_a_lease_granted_while_the_store_closes_goes_straight_back() -> None:
    plan, store, _ = make_plan()
    for i in range(BUSY):
        plan.reserve(f"r{i}", 10, MONTH)
    plan.book.closed = True
    lease = grant(store)
    await asyncio.sleep(0)
    assert store.returned == [lease] and plan.lease is None


async def test_the_book_returns_every_open_lease_and_the_one_holding_a_request() -> None:
    plan, store, _ = make_plan()
    lease = await granted(plan, store)
    plan.reserve("mine", 10, MONTH)
    plan.book.return_holding("other")
    assert lease.open
    plan.book.return_holding("mine")
    assert not lease.open and store.returned == [lease] and plan.book.open == {}


def test_a_lease_fits_requests_within_its_block_life_and_month() -> None:
    lease = Lease("L1", MONTH, 0.0, size=2, tokens=100, spend=50, deadline=10.0)
    assert fits(lease, 9.9, 100, 50, MONTH)
    assert not fits(lease, 10.0, 1, 0, MONTH)  # its life is over
    assert not fits(lease, 1.0, 101, 0, MONTH) and not fits(lease, 1.0, 1, 51, MONTH)
    assert not fits(lease, 1.0, 1, 0, "2027-01")
    lease.uses = {"a": [1, 0], "b": [1, 0]}
    assert not fits(lease, 1.0, 1, 0, MONTH)  # every request of the block was used


def test_lease_sizes_follow_how_much_of_the_last_was_used() -> None:
    def used(size: int, count: int) -> Lease:
        return Lease("L", MONTH, 0.0, size, 0, 0, uses={str(i): [0, 0] for i in range(count)})

    assert next_size(16, used(16, 16)) == 32
    assert next_size(16, used(16, 8)) == 16
    assert next_size(16, used(16, 3)) == 8
    assert next_size(MIN_SIZE, used(MIN_SIZE, 0)) == MIN_SIZE
    assert next_size(256, used(256, 256)) == 256


def test_a_lease_lives_shorter_than_a_short_window_and_its_block_outlives_it() -> None:
    assert lease_seconds(60.0) == 0.5
    assert lease_seconds(2.0) == 0.1
    assert life_ms(0.5) > 500 and life_ms(0.1) > 100


def test_the_end_of_a_month_in_utc() -> None:
    assert end_of_month("2026-12") == datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp()
    assert end_of_month("2026-02") == datetime(2026, 3, 1, tzinfo=timezone.utc).timestamp()


def test_a_leased_request_gets_the_headers_it_would_get_admitted_alone() -> None:
    plan, _, _ = make_plan()
    # Two windows after a block of 4 requests and 400 tokens: the second is tighter on requests, the first on tokens.
    states = (WindowState(100, 5000, 44, 4400, 30.0, 30.0), WindowState(60, 90_000, 24, 1400, 12.5, 12.5))
    lease = Lease("L", MONTH, 0.0, 4, 400, 0, rows=header_rows(states, 4, 400),
                  uses={"a": [100, 0], "b": [100, 0]}, used_tokens=200)
    alone = ratelimit_headers([WindowState(s.rpm, s.tpm, s.requests - 2, s.tokens - 200, s.reset_requests,
                                           s.reset_tokens) for s in states])
    assert plan._headers(lease) == alone
    assert alone["x-ratelimit-remaining-requests"] == "38" and alone["x-ratelimit-remaining-tokens"] == "800"
