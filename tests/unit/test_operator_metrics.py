"""The operator's metrics: change-to-Programmed timing, objects by condition, budgets."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lockgate.api.meta import Condition
from lockgate.operator.metrics import OperatorMetrics, condition_counts
from lockgate.operator.metrics_server import parse_address


def samples(metrics: OperatorMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_time_from_a_change_to_programmed_is_observed_once_per_published_change() -> None:
    now = [100.0]
    metrics = OperatorMetrics(clock=lambda: now[0])
    metrics.changed()
    now[0] = 101.0
    metrics.changed()  # same burst: the clock keeps the first change
    metrics.published(True)
    metrics.rolled_out(False)
    now[0] = 103.5
    metrics.rolled_out(True)
    metrics.rolled_out(True)  # nothing pending: not observed again
    metrics.changed()
    metrics.published(False)  # a status echo that published nothing is not waited for
    now[0] = 200.0
    metrics.rolled_out(True)
    got = samples(metrics)
    assert got[("lockgate_operator_change_to_programmed_seconds_count", ())] == 1
    assert got[("lockgate_operator_change_to_programmed_seconds_sum", ())] == 3.5


def test_objects_by_kind_condition_and_programmed_gauge() -> None:
    conds = [Condition(type="Accepted", status="True", reason="Accepted"),
             Condition(type="Ready", status="False", reason="NoEndpoints")]
    counts = condition_counts([("Route", conds), ("Route", conds[:1]), ("ApiKey", conds[:1])])
    metrics = OperatorMetrics(lambda: counts, lambda: False)
    got = samples(metrics)
    assert got[("lockgate_operator_objects", (("condition", "Accepted"), ("kind", "Route"), ("status", "True")))] == 2
    assert got[("lockgate_operator_objects", (("condition", "Ready"), ("kind", "Route"), ("status", "False")))] == 1
    assert got[("lockgate_operator_config_programmed", ())] == 0
    assert ("lockgate_operator_config_programmed", ()) not in samples(OperatorMetrics())  # before any render


def test_budget_gauges_per_key_from_mirrored_usage() -> None:
    usage = {"team-a/k": {"tokens": 800, "remaining": 200}, "team-b/k": {"tokens": 5, "remaining": None}}
    got = samples(OperatorMetrics(usage=lambda: usage))
    labels = (("apikey", "k"), ("apikey_namespace", "team-a"), ("budget", "monthly_tokens"))
    assert got[("lockgate_apikey_budget_used", labels)] == 800
    assert got[("lockgate_apikey_budget_limit", labels)] == 1000
    assert got[("lockgate_apikey_budget_used_ratio", labels)] == 0.8
    assert not any(name.startswith("lockgate_apikey") and ("apikey_namespace", "team-b") in lab
                   for name, lab in got)  # no budget, no series


def test_metrics_address_parsing() -> None:
    assert parse_address("127.0.0.1:8082") == ("127.0.0.1", 8082)
    assert parse_address(":8082") == ("0.0.0.0", 8082)
    for bad in ("8082", "host:", "host:99999", "host:x"):
        try:
            parse_address(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_window_gauges_per_key_for_each_limited_rate_window() -> None:
    usage = {"team-a/k": {"tokens": 1, "remaining": None,
                          "windows": {"rpm": {"used": 3, "limit": 4}, "tpm": {"used": 500, "limit": 1000}}}}
    got = samples(OperatorMetrics(usage=lambda: usage))
    rpm = (("apikey", "k"), ("apikey_namespace", "team-a"), ("window", "rpm"))
    assert got[("lockgate_apikey_window_used", rpm)] == 3 and got[("lockgate_apikey_window_limit", rpm)] == 4
    assert got[("lockgate_apikey_window_used_ratio", rpm)] == 0.75
    tpm = (("apikey", "k"), ("apikey_namespace", "team-a"), ("window", "tpm"))
    assert got[("lockgate_apikey_window_used_ratio", tpm)] == 0.5
    assert not any(name == "lockgate_apikey_budget_used" for name, _ in got)  # no monthly budget, no series


def test_team_budget_gauges_for_tokens_and_money_apart_from_the_keys() -> None:
    usage = {"Budget/team-a/platform": {"tokens": 90, "remaining": 10, "cost": "7.5", "remainingCost": "2.5"},
             "team-a/k": {"tokens": 1, "remaining": None, "cost": "3", "remainingCost": "1"}}
    got = samples(OperatorMetrics(usage=lambda: usage))
    tokens = (("budget", "monthly_tokens"), ("budget_namespace", "team-a"), ("team_budget", "platform"))
    money = (("budget", "monthly_cost"), ("budget_namespace", "team-a"), ("team_budget", "platform"))
    assert got[("lockgate_team_budget_used_ratio", tokens)] == 0.9
    assert (got[("lockgate_team_budget_used", money)], got[("lockgate_team_budget_limit", money)]) == (7.5, 10)
    assert got[("lockgate_team_budget_used_ratio", money)] == 0.75
    key_money = (("apikey", "k"), ("apikey_namespace", "team-a"), ("budget", "monthly_cost"))
    assert got[("lockgate_apikey_budget_used_ratio", key_money)] == 0.75
    assert [lab for name, lab in got if name.startswith("lockgate_apikey")] == [key_money] * 3  # a Budget is no key
