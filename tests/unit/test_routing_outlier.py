from __future__ import annotations

import random
from collections import Counter

from lockgate.api import ir
from lockgate.proxy.outlier import OutlierDetector
from lockgate.proxy.routing import expand_alias, plan, weighted_order
from lockgate.proxy.snapshot import Target
from tests.gatewayconfig import provider


def test_weighted_order_prefers_heavy_items_and_puts_zero_last() -> None:
    rng = random.Random(7)
    firsts = Counter(weighted_order(["a", "b", "c"], [80, 20, 0], rng)[0] for _ in range(2000))
    assert firsts["c"] == 0
    assert 0.75 < firsts["a"] / 2000 < 0.85


def test_alias_targets_then_fallbacks() -> None:
    alias = ir.Alias(name="x", targets=(ir.AliasTarget(model="a", weight=1), ir.AliasTarget(model="b", weight=1)),
                     fallbacks=("c", "a"))
    models = expand_alias(alias, random.Random(1))
    assert sorted(models[:2]) == ["a", "b"] and models[2:] == ["c"]


def test_plan_orders_tiers_and_deduplicates() -> None:
    p0 = provider("ns/p0", "openai", "http://a", [("m", "m")], priority=0)
    p1 = provider("ns/p1", "openai", "http://b", [("m", "m"), ("n", "n")], priority=1)
    tiers = {"m": ((Target(p0, p0.models[0]),), (Target(p1, p1.models[0]),)), "n": ((Target(p1, p1.models[1]),),)}
    targets = plan(["m", "n", "m"], tiers, random.Random(0))
    assert [(t.provider.id, t.model.name) for t in targets] == [("ns/p0", "m"), ("ns/p1", "m"), ("ns/p1", "n")]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_consecutive_failures_eject_for_growing_periods() -> None:
    clock = Clock()
    detector = OutlierDetector(clock)
    policy = ir.OutlierDetection(consecutive_failures=2, base_ejection_time=5, max_ejection_time=12)
    assert not detector.failure("p", policy)
    assert detector.failure("p", policy)
    assert detector.ejected(["p", "q"]) == frozenset({"p"})
    clock.now += 5.01
    assert not detector.is_ejected("p")
    detector.failure("p", policy)
    detector.failure("p", policy)
    assert detector.ejected_until("p") - clock.now == 10  # doubled
    clock.now += 10.01
    detector.failure("p", policy)
    detector.failure("p", policy)
    assert detector.ejected_until("p") - clock.now == 12  # capped
    clock.now += 13
    detector.success("p")
    detector.failure("p", policy)
    assert not detector.is_ejected("p")  # a success reset the count


def test_retry_after_ejects_at_once() -> None:
    clock = Clock()
    detector = OutlierDetector(clock)
    policy = ir.OutlierDetection(consecutive_failures=5, base_ejection_time=1, max_ejection_time=60)
    assert detector.failure("p", policy, retry_after=30)
    assert detector.ejected_until("p") - clock.now == 30
    detector.success("p")  # a success while ejected does not end the ejection
    assert detector.is_ejected("p")
