"""Budget alerts of keys and team Budgets, pure: thresholds crossed once per period, the condition, the CloudEvent and its signature."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone

from lockgate.api.meta import Condition
from lockgate.operator import alerts
from lockgate.operator.programmed import Rollout
from lockgate.operator.status_writer import object_status, status_usage
from lockgate.operator.translate import ObjectStatus
from lockgate.operator.webhooks import delivery

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
KEY = {"apiVersion": "lockgate.io/v1alpha1", "kind": "ApiKey",
       "metadata": {"namespace": "team", "name": "ci", "uid": "u-1"}, "spec": {"consumer": "ci"}}


def usage(tokens: int, limit: int = 1000, month: str = "2026-12") -> dict:
    return {"month": month, "tokens": tokens, "remaining": max(0, limit - tokens), "requests": 1}


def step(previous: dict | None, tokens: int, month: str = "2026-12", thresholds=(50, 80, 100)):
    budgets = alerts.budgets_of(usage(tokens, month=month))
    state = alerts.alert_state(budgets, list(thresholds), month, previous)
    return state, alerts.new_crossings(previous, state, budgets)


def test_each_threshold_fires_once_per_period_and_a_jump_fires_only_the_highest() -> None:
    state, fired = step(None, 100)
    assert fired == [] and state == {"period": "2026-12", "fired": {}}
    state, fired = step(state, 850)  # 50 and 80 crossed at once: one alert, at 80
    assert [(c.budget.name, c.threshold) for c in fired] == [("monthlyTokens", 80)]
    assert state["fired"] == {"monthlyTokens": [50, 80]}
    state, fired = step(state, 900)
    assert fired == []  # nothing new
    state, fired = step(state, 1000)
    assert [c.threshold for c in fired] == [100]
    state, fired = step(state, 10, month="2027-01")  # a new month starts with nothing fired
    assert fired == [] and state == {"period": "2027-01", "fired": {}}
    state, fired = step(state, 600, month="2027-01")
    assert [c.threshold for c in fired] == [50]


def test_no_usage_keeps_what_was_recorded() -> None:
    previous = {"period": "2026-12", "fired": {"monthlyTokens": [50]}}
    assert alerts.alert_state([], [50], None, previous) == previous
    assert alerts.budgets_of(None) == [] and alerts.budgets_of({"tokens": 5, "remaining": None}) == []


def test_other_budgets_in_a_usage_report_are_alerted_on_too() -> None:
    report = {**usage(10), "budgets": [{"name": "monthlyCost", "used": 41.5, "limit": 50, "unit": "USD"}]}
    budgets = alerts.budgets_of(report)
    state = alerts.alert_state(budgets, [80], "2026-12", None)
    [crossing] = alerts.new_crossings(None, state, budgets)
    assert (crossing.budget.name, crossing.threshold) == ("monthlyCost", 80)
    assert alerts.describe(crossing.budget, 80, "2026-12") == "80 % of the monthlyCost budget is used: 41.5 of 50 USD in 2026-12"


def test_the_condition_names_the_highest_threshold_crossed() -> None:
    budgets = alerts.budgets_of(usage(850))
    below = alerts.alert_condition({"period": "2026-12", "fired": {}}, budgets, [50, 80])
    assert (below.status, below.reason) == ("False", "BelowThresholds")
    crossed = alerts.alert_condition({"period": "2026-12", "fired": {"monthlyTokens": [50, 80]}}, budgets, [50, 80])
    assert (crossed.status, crossed.reason) == ("True", "Crossed80Percent")
    assert crossed.message == "80 % of the monthlyTokens budget is used: 850 of 1000 tokens in 2026-12"
    assert alerts.alert_condition(None, [], [50]).message == "No monthly limit to alert on"


def test_thresholds_default_to_50_80_100() -> None:
    assert alerts.thresholds_of(KEY) == [50, 80, 100]
    assert alerts.thresholds_of({"spec": {"alerts": {"thresholds": [90, 75, 90]}}}) == [75, 90]


def test_the_cloud_event_and_its_signature() -> None:
    budgets = alerts.budgets_of(usage(850))
    [crossing] = alerts.new_crossings(None, alerts.alert_state(budgets, [80], "2026-12", None), budgets)
    event = alerts.cloud_event(KEY, crossing, NOW)
    assert event["specversion"] == "1.0" and event["type"] == "io.lockgate.apikey.budget.threshold"
    assert event["id"] == "u-1/2026-12/monthlyTokens/80"  # the same for every retry of this alert
    assert event["source"] == "/apis/lockgate.io/v1alpha1/namespaces/team/apikeys/ci"
    assert event["time"] == "2026-12-02T12:00:00Z"
    assert event["data"] == {"apiKey": {"namespace": "team", "name": "ci", "consumer": "ci"}, "budget": "monthlyTokens",
                             "unit": "tokens", "threshold": 80, "used": 850, "limit": 1000, "ratio": 0.85,
                             "period": "2026-12",
                             "message": "80 % of the monthlyTokens budget is used: 850 of 1000 tokens in 2026-12"}
    body, headers = delivery(event, "s3cret")
    assert headers["Content-Type"].startswith("application/cloudevents+json")
    assert headers["X-Lockgate-Signature-256"] == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert "X-Lockgate-Signature-256" not in delivery(event, None)[1]


def test_only_the_key_usage_fields_go_into_the_status() -> None:
    assert status_usage({**usage(5), "windows": {"rpm": {"used": 1, "limit": 2}}}) == usage(5)


TEAM = {"apiVersion": "lockgate.io/v1alpha1", "kind": "Budget",
        "metadata": {"namespace": "team", "name": "platform", "uid": "u-2", "generation": 1},
        "spec": {"monthlyTokens": 1000, "monthlyCost": 10, "alerts": {"thresholds": [80, 100]}},
        "status": {"keys": ["ci", "web"]}}


def team_usage(tokens: int, cost: str, month: str = "2026-12") -> dict:
    left = f"{10 - float(cost):.6f}"
    return {"month": month, "tokens": tokens, "remaining": 1000 - tokens, "requests": 3, "cost": cost,
            "remainingCost": left, "currency": "EUR"}


def budget_status(current: dict | None, report: dict) -> dict:
    verdict = ObjectStatus(generation=1, conditions=[Condition(type="Accepted", status="True", reason="Accepted")])
    return object_status(TEAM, current, verdict, Rollout("c", "s", 1, 1), {}, report, NOW)


def test_a_team_budget_alerts_on_its_money_and_tokens_once_per_month() -> None:
    first = budget_status(None, team_usage(100, "8.500000"))  # money at 85 %, tokens at 10 %
    assert first["budgetAlerts"] == {"period": "2026-12", "fired": {"monthlyCost": [80]}}
    condition = next(c for c in first["conditions"] if c["type"] == "BudgetAlert")
    assert (condition["status"], condition["reason"]) == ("True", "Crossed80Percent")
    assert condition["message"] == "80 % of the monthlyCost budget is used: 8.5 of 10 EUR in 2026-12"
    [crossing] = alerts.new_crossings(None, first["budgetAlerts"], alerts.budgets_of(team_usage(100, "8.500000")))
    again = budget_status(first, team_usage(120, "9.000000"))  # the next reconcile: nothing new to tell
    assert alerts.new_crossings(first["budgetAlerts"], again["budgetAlerts"],
                                alerts.budgets_of(team_usage(120, "9.000000"))) == []
    january = budget_status(again, team_usage(900, "1.000000", month="2027-01"))  # a new month re-arms
    assert january["budgetAlerts"] == {"period": "2027-01", "fired": {"monthlyTokens": [80]}}

    event = alerts.cloud_event(TEAM, crossing, NOW)
    assert event["type"] == "io.lockgate.budget.threshold" and event["subject"] == "team/platform"
    assert event["source"] == "/apis/lockgate.io/v1alpha1/namespaces/team/budgets/platform"
    assert event["id"] == "u-2/2026-12/monthlyCost/80"
    assert event["data"]["teamBudget"] == {"namespace": "team", "name": "platform", "keys": ["ci", "web"]}
    assert (event["data"]["budget"], event["data"]["unit"], event["data"]["used"], event["data"]["limit"]) == (
        "monthlyCost", "EUR", 8.5, 10)


def test_a_team_budget_without_usage_is_below_its_thresholds() -> None:
    status = budget_status(None, {})
    condition = next(c for c in status["conditions"] if c["type"] == "BudgetAlert")
    assert (condition["status"], condition["reason"]) == ("False", "BelowThresholds")
    assert status.get("budgetAlerts") is None
