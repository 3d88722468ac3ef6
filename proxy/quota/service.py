"""The quota service: reserve before forwarding, settle after, over either store.

Consumer limits are refused at once (never queued); a provider model's limits
may make a request wait in a FairQueue up to the provider's queue.maxWait.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from lockgate.api.ir import Budget, ConsumerKey, RateLimits
from lockgate.proxy.quota import AdmitRequest, QuotaRejected, QuotaService, Reservation
from lockgate.proxy.quota.budget import month_end, month_of, month_start
from lockgate.proxy.quota.fair_queue import FairQueue, QueueFull
from lockgate.proxy.quota.headers import format_reset, ratelimit_headers, retry_after_value
from lockgate.proxy.quota.metrics import QUEUE_DEPTH, RESERVATIONS, RESERVED_TOKENS, SETTLED_TOKENS
from lockgate.proxy.quota.plan import (Group, GroupResult, Refusal, WindowSpec, budget_groups, consumer_group,
                                       cost_group, local_share, provider_group)
from lockgate.proxy.quota.store import QuotaStore
from lockgate.proxy.quota.usage import budgets_report, keys_report

MAX_PLANS = 100_000  # cached plans; keys x models come from config, this only guards memory
_LOCAL_IDS = itertools.count(1)  # request ids for in-process stores: unique in this process, which is enough
_SHARED_PREFIX = uuid.uuid4().hex[:16]  # with a counter: ids unique across the replicas sharing a store


def _new_prefix() -> None:
    global _SHARED_PREFIX
    _SHARED_PREFIX = uuid.uuid4().hex[:16]


os.register_at_fork(after_in_child=_new_prefix)  # a forked worker is a replica of its own


@dataclass(slots=True)
class _Plan:
    """What admissions for one key, model and provider need, built once per configuration."""

    key: ConsumerKey
    provider_limits: RateLimits
    consumer: Group
    provider: Group | None
    alone: tuple[Group, ...]  # the consumer's group
    both: tuple[Group, ...]  # and the provider model's, when it has limits
    fast: Any = None  # the store's compiled plan for `both` (an in-process store), else None
    queue: FairQueue | None = None  # the provider model's queue (when it has limits)


class StoreQuotaService:
    def __init__(self, store: QuotaStore, store_label: str = "memory", window: float = 60.0,
                 clock: Callable[[], float] = time.time, replicas: int = 1) -> None:
        self.store = store
        self.replicas = replicas  # > 1: the store is this replica's alone, it enforces its share of each limit
        self.store_label = store_label
        self.window = window
        self.clock = clock  # wall clock: decides the calendar month
        self._queues: dict[str, FairQueue] = {}
        self._keys: dict[str, ConsumerKey] = {}
        self._background: set[asyncio.Future[None]] = set()
        self._reservations = RESERVATIONS.cell((store_label,))
        self._reserved = RESERVED_TOKENS.cell()
        self._settled = SETTLED_TOKENS.cell()
        self._month_cache: tuple[float, float, str] = (0.0, 0.0, "")  # start, end, 'YYYY-MM'
        self._plans: dict[tuple[str, str, str], _Plan] = {}
        # The memory store decides synchronously: no task, no shield, no uuid per request.
        self._compile = getattr(store, "compile", None)
        self._reserve_now = getattr(store, "reserve_now", None)
        self._shared = self._reserve_now is None  # its request ids are seen by other replicas
        self._settle_now = getattr(store, "settle_now", None)
        # A shared store that settles in the background: the request does not wait for it.
        self._settle_soon = getattr(store, "settle_soon", None)
        # A shared store that batches: the request waits for its reply alone, no task of its own.
        self._reserve_soon = getattr(store, "reserve_soon", None)

    async def admit(self, request: AdmitRequest) -> Reservation:
        key = request.key
        self._keys[key.id] = key
        cost = request.estimated_tokens if request.estimated_tokens > 0 else 0  # max() costs a call
        spend = request.estimated_cost if request.estimated_cost > 0 else 0
        now = self.clock()
        cached = self._month_cache
        if not cached[0] <= now < cached[1]:
            cached = self._new_month(now)
        month, end = cached[2], cached[1]
        plan = self._plans.get((key.id, request.model, request.provider_id))
        if plan is None or plan.key is not key or plan.provider_limits is not request.provider_limits:
            plan = self._plan(request)
        queue = plan.queue
        # Every group at once, unless the provider has a queue: nobody jumps it. While others wait for
        # the provider, a newcomer that may wait joins them.
        direct = queue is None or queue.depth == 0 or request.queue_max_wait <= 0
        fast = plan.fast
        if fast is not None and direct and not request.repeat_of:  # the common case, decided in one step
            rid = f"{_SHARED_PREFIX}{next(_LOCAL_IDS):x}" if self._shared else f"{next(_LOCAL_IDS):x}"
            taken = fast.reserve(rid, cost, month, spend)
            if taken is not None:
                self._reservations.value += 1
                self._reserved.value += cost
                return Reservation(request, cost, taken[0], rid, month, end, plan.both, fast, taken[1],
                                   reserved_cost=spend)
        return await self._admit(request, plan, cost, now, month, end, direct, spend)

    async def _admit(self, request: AdmitRequest, plan: _Plan, cost: int, now: float, month: str, end: float,
                     direct: bool, spend: int = 0) -> Reservation:
        """Any admission: a repeat, a refusal to explain, a queue to join, a shared store."""
        repeat = bool(request.repeat_of)
        provider = plan.provider
        groups = plan.both if direct else plan.alone
        if self._reserve_now is not None:  # in-process store: decided in one step, nothing to cancel mid-way
            rid = request.repeat_of or f"{next(_LOCAL_IDS):x}"
            results = self._reserve_now(groups, rid, cost, month, end, repeat, spend)
        else:
            rid = request.repeat_of or f"{_SHARED_PREFIX}{next(_LOCAL_IDS):x}"  # unique across replicas
            results = await self._reserve_to_the_end(groups, rid, cost, month, end, repeat, spend)
        self._check_consumer(plan.alone, results, request, now, end)
        held = results[0]
        if provider is not None:
            assert plan.queue is not None  # a provider with limits has a queue
            refused = results[len(plan.alone)].refusal if direct else None
            if refused is not None or not direct:
                if request.queue_max_wait <= 0 or (refused is not None and math.isinf(refused.wait)):
                    raise _provider_rejection(request, refused.wait if refused else self.window, self.window)
                if refused is not None:  # nothing is held: the consumer's own share waits with the request
                    results = await self._reserve_to_the_end(plan.alone, rid, cost, month, end, repeat, spend)
                    self._check_consumer(plan.alone, results, request, now, end)
                    held = results[0]
                try:
                    await self._wait_for_provider(provider, plan.queue, request, rid, cost, month, end,
                                                  refused.wait if refused else None)
                except BaseException:
                    await self._release(plan.alone, rid, month, end, cost, repeat, spend)
                    raise
        self._reservations.value += 1
        self._reserved.value += cost
        return Reservation(request, cost, ratelimit_headers(held.windows), rid, month, end, plan.both,
                           reserved_cost=spend)

    def _check_consumer(self, groups: Sequence[Group], results: Sequence[GroupResult], request: AdmitRequest,
                        now: float, end: float) -> None:
        """Raise the rejection of the first of the consumer's groups (its key's, its team Budgets') that refused."""
        for group, result in zip(groups, results):
            if result.refusal is not None:
                raise self._consumer_rejection(result.refusal, group, request, now, end)

    def _new_month(self, now: float) -> tuple[float, float, str]:
        """The UTC month of `now` (start, end, 'YYYY-MM'), cached until `now` leaves it."""
        self._month_cache = (month_start(now), month_end(now), month_of(now))
        return self._month_cache

    def _plan(self, request: AdmitRequest) -> _Plan:
        """A new plan for the request's key, model and provider (a new configuration brings new
        objects, so a new plan)."""
        plan_key = (request.key.id, request.model, request.provider_id)
        consumer = consumer_group(request.key, request.model)
        provider = provider_group(request.provider_id, request.model, request.provider_limits)
        # The key's money, then each team Budget's tokens and money: budgets only, all or nothing with the rest.
        spending = (cost_group(request.key, request.model),) + tuple(
            g for budget in request.budgets for g in budget_groups(budget))
        if self.replicas > 1:
            consumer = local_share(consumer, self.replicas, {})
            provider = local_share(provider, self.replicas, {}) if provider is not None else None
            spending = tuple(local_share(g, self.replicas, {}) for g in spending)
        alone = (consumer, *spending)
        both = alone if provider is None else (*alone, provider)
        queue = None
        if provider is not None:
            queue = self._queues.get(provider.tag)
            if queue is None:
                queue = self._queues[provider.tag] = FairQueue(_depth_gauge(request.provider_id, request.model))
            queue.max_depth, queue.batch_max_delay = request.queue_max_depth, request.queue_max_batch_delay
        plan = _Plan(request.key, request.provider_limits, consumer, provider, alone, both,
                     self._compile(both) if self._compile is not None else None, queue)
        if len(self._plans) >= MAX_PLANS:
            self._plans.clear()
        self._plans[plan_key] = plan
        return plan

    async def _reserve_to_the_end(self, groups: Sequence[Group], rid: str, cost: int, month: str,
                                  end: float, repeat: bool = False, spend: int = 0) -> list[GroupResult]:
        """A caller cancelled mid-call (the client went away) must not leave a reservation behind:
        the call finishes anyway and whatever it reserved is released."""
        if self._reserve_soon is not None:
            def orphaned(results: list[GroupResult]) -> None:
                if all(r.refusal is None for r in results):  # all or nothing was reserved
                    self._track(self._release(groups, rid, month, end, cost, repeat, spend))

            sent = self._reserve_soon(groups, rid, cost, month, end, repeat, spend, (groups, orphaned))
            if sent is not None:
                return await self.store.replied(sent, groups, rid, cost, month, end, repeat, spend)  # type: ignore[attr-defined, no-any-return]
        task = asyncio.ensure_future(self.store.reserve(groups, rid, cost, month, end, repeat, spend))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            def undo(done: asyncio.Future[list[GroupResult]]) -> None:
                if not done.cancelled() and done.exception() is None:
                    if all(r.refusal is None for r in done.result()):  # all or nothing was reserved
                        self._track(self._release(groups, rid, month, end, cost, repeat, spend))
            task.add_done_callback(undo)
            raise

    def _track(self, coro: Coroutine[Any, Any, None]) -> asyncio.Future[None]:
        """Run to the end even if the caller is cancelled; close() waits for it."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _wait_for_provider(self, provider: Group, queue: FairQueue, request: AdmitRequest, rid: str, cost: int,
                                 month: str, end: float, first_wait: float | None) -> None:
        last_wait = [first_wait or 0.0]

        async def try_admit() -> tuple[float | None, object]:
            (result,) = await self.store.reserve([provider], rid, cost, month, end)
            if result.refusal is None:
                return None, result
            last_wait[0] = result.refusal.wait
            return result.refusal.wait, None

        async def release(_: object) -> None:
            await self._release([provider], rid, month, end, cost)

        try:
            await queue.wait(request.key.consumer, try_admit, release, request.queue_max_wait, request.priority,
                             request.weight)
        except (TimeoutError, QueueFull):
            raise _provider_rejection(request, last_wait[0], self.window) from None

    async def _release(self, groups: Sequence[Group], rid: str, month: str, end: float, cost: int,
                       repeat: bool = False, spend: int = 0) -> None:
        if repeat:  # the consumer keeps counting the request's first admission, with no tokens
            kept = [g for g in groups if g.budgets]
            groups = [g for g in groups if not g.budgets]
            if kept:
                await self.store.settle(kept, rid, month, end, -cost, 0, release=False, spend_delta=-spend)
        if groups:
            await self.store.settle(groups, rid, month, end, -cost, 0, release=True, spend_delta=-spend)

    def _consumer_rejection(self, refusal: Refusal, group: Group, request: AdmitRequest, now: float,
                            end: float) -> QuotaRejected:
        if refusal.reason == "budget":
            wait = end - now
            scope = f" for {request.model}" if refusal.limit_name.startswith("model:") else ""
            what = "money" if group.unit == "cost" else "token"
            kind, _, owner = group.tag.partition(":")
            whose = f"Budget {owner}" if kind.startswith("budget") else f"key {request.key.id}"
            return QuotaRejected("insufficient_quota",
                                 f"You exceeded the monthly {what} budget{scope} of {whose}; "
                                 f"it renews at the start of the next month (UTC).",
                                 wait, {"Retry-After": retry_after_value(wait)})
        spec = next(w for w in group.windows if w.name == refusal.limit_name)
        return _rate_rejection("rate_limit_exceeded", refusal, spec, request, self.window,
                               f"key {request.key.id}" + ("" if spec.name == "all" else f" for {request.model}"))

    async def settle(self, reservation: Reservation, used_tokens: int, used_cost: int = 0) -> None:
        if reservation.settled or not reservation.rid:
            return
        reservation.settled = True
        used = used_tokens if used_tokens > 0 else 0
        spend_delta = (used_cost if used_cost > 0 else 0) - reservation.reserved_cost
        self._settled.value += used
        fast = reservation.plan
        if fast is not None:  # taken by a compiled plan: settled by it, in this step
            fast.settle(reservation.rid, reservation.held, reservation.month, used - reservation.reserved_tokens, used,
                        spend_delta)
            return
        if self._settle_now is not None:  # in-process store: done in this step, a cancel cannot cut it short
            self._settle_now(reservation.groups, reservation.rid, reservation.month, reservation.month_end,
                             used - reservation.reserved_tokens, used, False, spend_delta)
            return
        # Shielded: a settle the client's disconnect interrupts still completes.
        await asyncio.shield(self._track(self.store.settle(
            reservation.groups, reservation.rid, reservation.month, reservation.month_end,
            used - reservation.reserved_tokens, used, release=False, spend_delta=spend_delta)))

    def settle_later(self, reservation: Reservation, used_tokens: int, used_cost: int = 0) -> Awaitable[None] | None:
        """As settle, for the request path: a shared store's settlement leaves with the next round trip
        and the request does not wait for it (retried on a blip; close() waits for it). Returns what
        to await when the store cannot settle that way."""
        if reservation.settled or not reservation.rid:
            return None
        if self._settle_soon is None or reservation.plan is not None:
            return self.settle(reservation, used_tokens, used_cost)
        reservation.settled = True
        used = used_tokens if used_tokens > 0 else 0
        spend_delta = (used_cost if used_cost > 0 else 0) - reservation.reserved_cost
        self._settled.value += used
        self._settle_soon(reservation.groups, reservation.rid, reservation.month, reservation.month_end,
                          used - reservation.reserved_tokens, used, False, spend_delta)
        return None

    async def usage(self, keys: Sequence[ConsumerKey] | None = None) -> dict[str, dict[str, object]]:
        chosen = list(keys) if keys is not None else list(self._keys.values())
        return await keys_report(self.store, chosen, month_of(self.clock()))

    async def budget_usage(self, budgets: Sequence[Budget]) -> dict[str, dict[str, object]]:
        return await budgets_report(self.store, budgets, month_of(self.clock()))

    async def close(self) -> None:
        if self._background:
            await asyncio.wait(self._background, timeout=2)
        await self.store.close()


def _depth_gauge(provider_id: str, model: str) -> Callable[[int], None]:
    """Sets a provider model's queue depth gauge, shown from the first time its queue is used."""
    cell = None

    def set_depth(depth: int) -> None:
        nonlocal cell
        if cell is None:
            cell = QUEUE_DEPTH.cell((provider_id, model))
        cell.value = depth

    return set_depth


def _rate_rejection(code: str, refusal: Refusal, spec: WindowSpec, request: AdmitRequest, window: float,
                    whom: str) -> QuotaRejected:
    per = "minute" if window == 60 else f"{window:g}s"
    kind, limit = ("requests", spec.rpm) if refusal.reason == "requests" else ("tokens", spec.tpm)
    if math.isinf(refusal.wait):
        wait = window
        message = (f"Request too large for {whom}: {kind} per {per} limit is {limit}, "
                   f"this request needs {request.estimated_tokens}. Lower max_tokens or the prompt.")
    else:
        wait = refusal.wait
        message = (f"Rate limit reached for {whom}: {kind} per {per} limit is {limit}. "
                   f"Please try again in {format_reset(wait)}.")
    headers = {
        "Retry-After": retry_after_value(wait),
        f"x-ratelimit-limit-{kind}": str(limit),
        f"x-ratelimit-remaining-{kind}": "0",
        f"x-ratelimit-reset-{kind}": format_reset(wait),
    }
    return QuotaRejected(code, message, wait, headers)


def _provider_rejection(request: AdmitRequest, wait: float, window: float) -> QuotaRejected:
    wait = window if math.isinf(wait) else wait
    return QuotaRejected("provider_rate_limited",
                         f"The provider of {request.model} is at capacity and the request could not be "
                         f"served within the queue wait. Please try again in {format_reset(wait)}.",
                         wait, {"Retry-After": retry_after_value(wait)})


def build_service(store: str, fail_mode: str, replicas_hint: int, state_dir: str | None,
                  window: float, ca_file: str | None = None) -> QuotaService:
    if store == "memory":
        from lockgate.proxy.quota.memory_store import MemoryStore

        # Each replica counts alone: it admits its share of every limit (limit / replicas).
        return StoreQuotaService(MemoryStore(window, state_dir), "memory", window, replicas=max(1, replicas_hint))
    if store.startswith(("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")):
        from lockgate.proxy.quota.failover import FailoverStore
        from lockgate.proxy.quota.redis_store import RedisStore

        shared = FailoverStore(RedisStore(store, window, ca_file=ca_file), fail_mode, replicas_hint, window)
        return StoreQuotaService(shared, "redis", window)
    raise ValueError(f"quota store must be 'memory' or a redis:// URL, not {store!r}")
