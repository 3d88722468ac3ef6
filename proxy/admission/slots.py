"""Endpoint slots of self-hosted providers under `loadBalancing.maxConcurrency`.

A request takes a slot with its endpoint: the balancer's pick (which counts the
slots this replica holds) and, with Redis, a lease on the endpoint's shared
semaphore (which counts every replica's). When no endpoint has a free slot the
request waits in the provider's queue, up to its wait; a released slot wakes the
queue at once (a slot freed by another replica is seen at the next poll). A
request that cannot wait, or waited in vain, gets `Busy` with a Retry-After
estimated from the queue: the requests ahead times the mean time a slot is held,
over the slots there are.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from lockgate.api.ir import Priority, Provider
from lockgate.proxy.admission.metrics import QUEUE_DEPTH, QUEUE_WAIT
from lockgate.proxy.admission.shared_api import SharedSemaphore, SharedUnavailable, slot_key
from lockgate.proxy.balancing import Balancer, Lease, PickRequest
from lockgate.proxy.quota.fair_queue import FairQueue, QueueFull

SHARED_POLL = 0.05  # seconds between asks while only another replica can free a slot
LOCAL_POLL = 1.0  # a local release wakes the queue; this catches new endpoints and ended ejections
HOLD_SMOOTHING = 0.2  # weight of the newest hold time in the moving average
EJECTION_MARGIN = 0.005  # seconds past an ejection's end before asking again


def effective_wait(provider_wait: float, route_wait: float | None, asked: float | None) -> float:
    """Seconds a request may wait in a queue: the Route's wait when set, else the provider's,
    lowered to what the request asked for."""
    wait = provider_wait if route_wait is None else route_wait
    return wait if asked is None or asked >= wait else asked


def outage_pause(remaining: list[float], wait: float) -> float | None:
    """How long to wait for an upstream to come back when all of them are ejected (`remaining`: the seconds
    left of each one's ejection): until the first returns, if that is within the request's wait; else None."""
    if not remaining or min(remaining) <= 0:
        return None
    soonest = min(remaining) + EJECTION_MARGIN
    return soonest if soonest <= wait else None


@dataclass(slots=True)
class Ticket:
    """Who waits, and for how long: built only when a provider has slots to wait for."""

    consumer: str
    priority: Priority = "interactive"
    weight: int = 1
    wait: float = 0.0


class Busy(Exception):
    """No slot within the request's wait (or the queue is full)."""

    def __init__(self, retry_after: float, full: bool) -> None:
        super().__init__("queue full" if full else "no free slot within the wait")
        self.retry_after = retry_after
        self.full = full


class _ProviderSlots:
    """One provider's queue and what is known of its slots' hold times."""

    def __init__(self, provider: Provider) -> None:
        self.provider_id = provider.id
        depth = QUEUE_DEPTH.cell((provider.id,))
        self.queue = FairQueue(lambda n: setattr(depth, "value", n))
        self.hold = 0.0  # seconds a slot is held, on average (0: not known yet)
        self.configure(provider)

    def configure(self, provider: Provider) -> None:
        self.provider = provider  # a new snapshot brings a new object: configured again
        self.queue.max_depth = provider.queue_max_depth
        self.queue.batch_max_delay = provider.queue_max_batch_delay
        self.slots = max(1, (provider.load_balancing.max_concurrency or 1) * max(1, len(provider.endpoint_urls())))

    def released(self, held: float) -> None:
        self.hold = held if self.hold == 0.0 else self.hold + HOLD_SMOOTHING * (held - self.hold)
        self.queue.wake()

    def retry_after(self) -> float:
        """Seconds until a newcomer would likely get a slot: the waiters ahead and itself, served at the
        slots' pace; at least 1."""
        if self.hold == 0.0:
            return 1.0
        return max(1.0, math.ceil((self.queue.depth + 1) * self.hold / self.slots))


class SlotLease:
    """An endpoint lease that gives its slot back to the queue (and the shared semaphore)."""

    __slots__ = ("inner", "url", "_owner", "_shared", "_held", "_since", "_released")

    def __init__(self, inner: Lease, owner: _ProviderSlots, shared: SharedSemaphore | None,
                 held: tuple[str, str] | None) -> None:
        self.inner, self.url = inner, inner.url
        self._owner, self._shared, self._held = owner, shared, held
        self._since = time.monotonic()
        self._released = False

    def first_token(self) -> None:
        self.inner.first_token()

    def release(self, ok: bool, output_tokens: int = 0) -> None:
        if self._released:
            return
        self._released = True
        self.inner.release(ok, output_tokens)
        self._give_back()
        self._owner.released(time.monotonic() - self._since)

    def abandon(self) -> None:
        """Give the slot back as if no request had been sent (a waiter that left meanwhile)."""
        if self._released:
            return
        self._released = True
        _abandon(self.inner)
        self._give_back()
        self._owner.queue.wake()

    def _give_back(self) -> None:
        if self._held is not None and self._shared is not None:
            self._shared.release(*self._held)


def _abandon(lease: Lease) -> None:
    abandon: Callable[[], None] | None = getattr(lease, "abandon", None)
    if abandon is not None:
        abandon()
    else:
        lease.release(False)


class Slots:
    def __init__(self, shared: SharedSemaphore | None = None) -> None:
        self.shared = shared
        self._providers: dict[str, _ProviderSlots] = {}

    def _for(self, provider: Provider) -> _ProviderSlots:
        slots = self._providers.get(provider.id)
        if slots is None:
            slots = self._providers[provider.id] = _ProviderSlots(provider)
        elif slots.provider is not provider:
            slots.configure(provider)
        return slots

    async def acquire(self, balancer: Balancer, provider: Provider, request: PickRequest,
                      ticket: Ticket) -> Lease | None:
        """An endpoint with a free slot, waiting up to `ticket.wait` for one; None when no endpoint may be
        used at all (every one ejected or already tried); Busy when the wait ran out or the queue is full."""
        cap = provider.load_balancing.max_concurrency
        if cap is None:
            return await balancer.pick(request)
        slots = self._for(provider)
        queue = slots.queue
        if queue.depth == 0:  # nobody waits: take a slot now if there is one (nobody is jumped)
            lease = await self._take(slots, balancer, provider, request, cap)
            if lease is not None:
                return lease
        if not any(url not in request.excluded for url in provider.endpoint_urls()):
            return None  # not a question of capacity: no endpoint is left to wait for
        if ticket.wait <= 0:
            raise Busy(slots.retry_after(), full=False)
        poll = SHARED_POLL if self.shared is not None else LOCAL_POLL

        async def try_admit() -> tuple[float | None, Lease | None]:
            lease = await self._take(slots, balancer, provider, request, cap)
            return (None, lease) if lease is not None else (poll, None)

        async def give_back(lease: Lease) -> None:
            _abandon(lease)

        started = time.monotonic()
        outcome = "admitted"
        try:
            leased: Lease = await queue.wait(ticket.consumer, try_admit, give_back, ticket.wait, ticket.priority,
                                             ticket.weight)
            return leased
        except TimeoutError:
            outcome = "timeout"
            raise Busy(slots.retry_after(), full=False) from None
        except QueueFull:
            outcome = "full"
            raise Busy(slots.retry_after(), full=True) from None
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            QUEUE_WAIT.histogram((provider.id, ticket.priority, outcome)).observe(time.monotonic() - started)

    async def _take(self, slots: _ProviderSlots, balancer: Balancer, provider: Provider, request: PickRequest,
                    cap: int) -> Lease | None:
        """A free slot now: the balancer's choice, confirmed by the shared semaphore (another endpoint
        when the chosen one is full across replicas), or None."""
        shared = self.shared
        while True:
            lease = await balancer.pick(request)
            if lease is None:
                return None
            if shared is None:
                return SlotLease(lease, slots, None, None)
            key, lease_id = slot_key(provider.id, lease.url), uuid.uuid4().hex
            try:
                taken = await shared.acquire(key, lease_id, cap)
            except SharedUnavailable:  # Redis away: this replica's own count is the limit meanwhile
                return SlotLease(lease, slots, None, None)
            except BaseException:  # cancelled mid-call: whatever was taken goes back
                _abandon(lease)
                shared.release(key, lease_id)
                raise
            if taken:
                return SlotLease(lease, slots, shared, (key, lease_id))
            _abandon(lease)
            request = replace(request, excluded=request.excluded | {lease.url})

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()


def make_slots(quota_store: str, lease_seconds: float = 10.0, ca_file: str | None = None) -> Slots:
    """Slots counted by this replica alone (memory quota store), or shared by every replica through the
    Redis of the quota store."""
    if quota_store.startswith(("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")):
        from lockgate.proxy.admission.shared import SharedSlots  # the Redis client loads only when used

        return Slots(SharedSlots(quota_store, lease_seconds, ca_file=ca_file))
    return Slots()
