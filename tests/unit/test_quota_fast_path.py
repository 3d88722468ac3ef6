"""The memory store's compiled plans decide and answer exactly as its general path does.

Pure: windows, headers and two quota services over in-memory stores with clocks
the test moves; no file, no socket.
"""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from lockgate.api.ir import ConsumerKey, RateLimits
from lockgate.proxy.quota import AdmitRequest, QuotaRejected, Reservation
from lockgate.proxy.quota.headers import LimitRow, format_reset, ratelimit_headers, reset_text, window_headers
from lockgate.proxy.quota.memory_store import MemoryStore
from lockgate.proxy.quota.service import StoreQuotaService
from lockgate.proxy.quota.window import SlidingWindow

WALL = datetime(2026, 11, 15, 12, tzinfo=timezone.utc).timestamp()


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class GeneralOnly(MemoryStore):
    """The memory store without compiled plans: every admission takes the general path."""

    compile = None  # type: ignore[assignment]


@pytest.mark.parametrize("seconds", [0, -1, 0.0004, 0.001, 0.0011, 0.12, 0.9994, 0.9999, 1, 1.0001, 1.2, 59.5, 60,
                                     360, 3723, 7200.5])
def test_reset_text_is_format_reset(seconds: float) -> None:
    assert reset_text(seconds) == format_reset(seconds)
    assert reset_text(seconds) == format_reset(seconds)  # remembered, unchanged


def rows(windows: list[tuple[SlidingWindow, int | None, int | None]]) -> tuple[list[LimitRow], list[LimitRow]]:
    return ([(w, rpm, str(rpm)) for w, rpm, _ in windows if rpm is not None],
            [(w, tpm, str(tpm)) for w, _, tpm in windows if tpm is not None])


def test_window_headers_are_the_states_headers() -> None:
    rng = random.Random(7)
    for case in range(300):
        windows = []
        now = 100.0
        for _ in range(rng.randint(0, 3)):
            w = SlidingWindow(60)
            for i in range(rng.randint(1, 6)):  # at least one request: headers follow an admission
                w.add(now - rng.uniform(0, 59), f"r{i}", rng.randint(0, 400))
            w.prune(now)
            rpm = rng.choice([None, 2, 5, 6, 10**9])
            tpm = rng.choice([None, 300, 1000, 10**12])
            windows.append((w, rpm, tpm))
        expected = ratelimit_headers([w.state(now, rpm, tpm) for w, rpm, tpm in windows])
        assert window_headers(*rows(windows), now) == expected, case


def test_a_held_request_settles_through_its_slot_and_is_found_once_indexed() -> None:
    w = SlidingWindow(60)
    slot = w.hold(0.0, "a", 300)
    assert (len(w), w.total, w.admitted_at("a")) == (1, 300, None)  # held, not indexed
    w.settle_held(slot, "a", 100)
    assert w.total == 100 and slot[2] == 100
    assert w.wait(1.0, 1, None, 10, repeat_of="a") == ("requests", 59.0)  # not found by rid: counted anew
    w.index(slot, "a")
    assert w.wait(1.0, 1, None, 10, repeat_of="a") is None and w.admitted_at("a") == 0.0
    w.prune(60.0)  # it left the window
    assert (len(w), w.total, w.where) == (0, 0, {})
    w.settle_held(slot, "a", 500)  # a settle after it left changes nothing
    w.index(slot, "a")
    assert (len(w), w.total, w.where) == (0, 0, {})


def key(name: str, limits: RateLimits = RateLimits(), **models: RateLimits) -> ConsumerKey:
    return ConsumerKey(id=f"ns/{name}", consumer=name, hashes=(), limits=limits, model_limits=models)


KEYS = [key("tight", RateLimits(rpm=5, tpm=3000, monthly_tokens=20_000)),
        key("per-model", RateLimits(rpm=8), m1=RateLimits(rpm=3, tpm=2000, monthly_tokens=5_000)),
        key("open")]
PROVIDERS = {"ns/p1": RateLimits(rpm=6, tpm=4000), "ns/p2": RateLimits(), "ns/p3": RateLimits(rpm=4)}


def outcome(result: Reservation | QuotaRejected) -> tuple[object, ...]:
    if isinstance(result, QuotaRejected):
        return ("refused", result.code, result.message, result.retry_after, result.headers, result.status)
    return ("admitted", result.reserved_tokens, result.headers, result.month, [g.tag for g in result.groups])


async def test_compiled_plans_answer_as_the_general_path() -> None:
    """The same random traffic (admissions, settles, failovers settled with nothing and admitted
    again, time passing) through both paths: the same answers, headers and usage."""
    clocks = [Clock(), Clock()]
    services = [StoreQuotaService(MemoryStore(60, None, clock=clocks[0]), clock=lambda: WALL),
                StoreQuotaService(GeneralOnly(60, None, clock=clocks[1]), clock=lambda: WALL)]
    rng = random.Random(11)
    open_: list[list[Reservation]] = []  # the reservations of both services, side by side
    admitted = refused = repeats = 0

    async def admit(request: AdmitRequest, repeat_of: tuple[str, str] = ("", "")) -> list[Reservation] | None:
        nonlocal admitted, refused
        results: list[Reservation | QuotaRejected] = []
        for service, rid in zip(services, repeat_of):
            copy = AdmitRequest(request.key, request.model, request.provider_id, request.provider_limits,
                                request.estimated_tokens, repeat_of=rid)
            try:
                results.append(await service.admit(copy))
            except QuotaRejected as e:
                results.append(e)
        assert outcome(results[0]) == outcome(results[1])
        if isinstance(results[0], QuotaRejected):
            refused += 1
            return None
        admitted += 1
        return results  # type: ignore[return-value]

    for step in range(3000):
        advance = rng.choice([0.0, 0.0002, 0.0007, 0.3, 2.0, 9.0])
        for clock in clocks:
            clock.now += advance
        choice = rng.random()
        if choice < 0.55 or not open_:
            k = rng.choice(KEYS)
            provider = rng.choice(list(PROVIDERS))
            request = AdmitRequest(k, rng.choice(["m1", "m2"]), provider, PROVIDERS[provider], rng.randint(1, 900))
            pair = await admit(request)
            if pair is not None:
                open_.append(pair)
        elif choice < 0.85:
            pair = open_.pop(rng.randrange(len(open_)))
            used = rng.choice([0, rng.randint(1, 1200)])
            for service, reservation in zip(services, pair):
                await service.settle(reservation, used)
        else:  # a failover: settled with nothing, admitted again for another provider
            pair = open_.pop(rng.randrange(len(open_)))
            for service, reservation in zip(services, pair):
                await service.settle(reservation, 0)
            first = pair[0].request
            provider = rng.choice(list(PROVIDERS))
            again = AdmitRequest(first.key, first.model, provider, PROVIDERS[provider], first.estimated_tokens)
            repeated = await admit(again, (pair[0].rid, pair[1].rid))
            repeats += 1
            if repeated is not None:
                open_.append(repeated)
        if step % 250 == 0:
            assert await services[0].usage(KEYS) == await services[1].usage(KEYS), step
    assert await services[0].usage(KEYS) == await services[1].usage(KEYS)
    assert admitted > 500 and refused > 500 and repeats > 200  # every path was taken, many times
