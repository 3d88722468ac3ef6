"""The arithmetic of admission at capacity: queue waits, the Retry-After estimate, the wait header."""

from __future__ import annotations

import pytest

from lockgate.api import ir
from lockgate.proxy.admission import effective_wait, outage_pause
from lockgate.proxy.admission.slots import _ProviderSlots
from lockgate.proxy.errors import ApiError
from lockgate.proxy.pipeline.context import Context
from lockgate.proxy.pipeline.steps.classify import ClassifyStep, asked_wait
from lockgate.proxy.snapshot import EMPTY_POOL, KeyEntry, _openai_view


@pytest.mark.parametrize(("provider", "route", "asked", "wait"), [
    (10.0, None, None, 10.0),  # the provider's
    (10.0, 60.0, None, 60.0),  # the Route's replaces it, longer or shorter
    (10.0, 2.0, None, 2.0),
    (10.0, 60.0, 5.0, 5.0),  # the request may ask for less...
    (10.0, None, 30.0, 10.0),  # ...never for more
    (0.0, None, 5.0, 0.0),
])
def test_the_wait_is_the_routes_or_the_providers_lowered_by_the_request(
        provider: float, route: float | None, asked: float | None, wait: float) -> None:
    assert effective_wait(provider, route, asked) == wait


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf", ""])
def test_a_bad_wait_header_is_a_400(value: str) -> None:
    with pytest.raises(ApiError) as bad:
        asked_wait(value)
    assert bad.value.status == 400 and bad.value.code == "invalid_header"


def test_a_good_wait_header_is_seconds() -> None:
    assert asked_wait("2.5") == 2.5 and asked_wait("0") == 0.0


def test_retry_after_is_the_waiters_ahead_at_the_slots_pace() -> None:
    provider = ir.Provider(id="ns/p", type="openai-compatible", models=(),
                           endpoints=(ir.Endpoint(address="127.0.0.1", port=1), ir.Endpoint(address="127.0.0.1", port=2)),
                           load_balancing=ir.LoadBalancing(max_concurrency=2))
    slots = _ProviderSlots(provider)
    assert slots.retry_after() == 1.0  # nothing known yet
    slots.released(8.0)  # a slot is held 8 s
    assert slots.slots == 4 and slots.retry_after() == 2.0  # the newcomer: 1 x 8 s over 4 slots
    slots.queue.depth = 9  # nine ahead of it
    assert slots.retry_after() == 20.0  # 10 x 8 / 4
    slots.released(18.0)
    assert slots.hold == pytest.approx(10.0)  # a moving average


@pytest.mark.parametrize(("remaining", "wait", "pause"), [
    ([], 10.0, None),  # no endpoint at all
    ([2.0, 0.0], 10.0, None),  # one is not ejected: not an outage (busy, or already tried)
    ([2.0, 1.0], 10.0, 1.005),  # until the first comes back, and a little
    ([2.0], 1.0, None),  # longer than the request may wait
    ([2.0], 0.0, None),
])
def test_a_short_outage_is_waited_out(remaining: list[float], wait: float, pause: float | None) -> None:
    assert outage_pause(remaining, wait) == (pytest.approx(pause) if pause is not None else None)


def _classified(key: ir.ConsumerKey, routes: list[ir.Route], headers: dict[str, str] | None = None,
                priority: str = "interactive") -> Context:
    ctx = Context("r", None, "POST", "/v1/chat/completions", "*", headers=headers or {},  # type: ignore[arg-type]
                  priority=priority)  # type: ignore[arg-type]
    ctx.entry = KeyEntry(key, None, None, None, None, "ns")
    ctx.view = _openai_view(routes, EMPTY_POOL)
    ClassifyStep().request(ctx)
    return ctx


def test_the_class_is_batch_when_the_entry_point_the_key_or_a_route_says_so() -> None:
    plain, batch_key = ir.ConsumerKey(id="ns/a", consumer="a", hashes=()), ir.ConsumerKey(
        id="ns/b", consumer="b", hashes=(), priority="batch")
    api = ir.Route(id="ns/api", type="openai", hosts=("*",))
    nightly = ir.Route(id="ns/nightly", type="openai", hosts=("*",), priority="batch", queue_max_wait=600.0)
    short = ir.Route(id="ns/short", type="openai", hosts=("*",), queue_max_wait=5.0)
    assert _classified(plain, [api]).priority == "interactive"
    assert _classified(batch_key, [api]).priority == "batch"
    assert _classified(plain, [api, nightly]).priority == "batch"
    assert _classified(plain, [api], priority="batch").priority == "batch"  # a batch line stays batch
    ctx = _classified(plain, [nightly, short], {"x-lockgate-max-wait": "30"})
    assert (ctx.route_wait, ctx.max_wait) == (5.0, 30.0)  # the Routes' shortest; the request's own ask
    assert _classified(plain, [api]).route_wait is None
