"""Budget alerts of ApiKeys and team Budgets, pure and the same for both kinds:
which monthly limits an object has, which thresholds their use crossed this
period, the BudgetAlert condition, and the CloudEvent a webhook receives.

The thresholds already crossed are kept in the object's status
(`budgetAlerts: {period, fired}`), so each fires once per period, also across
operator restarts; a new period starts with none fired.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lockgate.api.alerts import DEFAULT_ALERT_THRESHOLDS
from lockgate.api.meta import Condition
from lockgate.operator.status import rfc3339

CONDITION = "BudgetAlert"
EVENT_REASON = "BudgetThresholdCrossed"
EVENT_TYPE = "io.lockgate.apikey.budget.threshold"
# The CloudEvents type and the plural in its source, per kind that has alerts.
EVENT_TYPES = {"ApiKey": (EVENT_TYPE, "apikeys"), "Budget": ("io.lockgate.budget.threshold", "budgets")}
SIGNATURE_HEADER = "X-Lockgate-Signature-256"


@dataclass(frozen=True)
class Budget:
    name: str  # monthlyTokens, or a budget the usage report names
    used: float
    limit: float
    unit: str = "tokens"


@dataclass(frozen=True)
class Crossing:
    budget: Budget
    threshold: int  # the highest threshold newly crossed (lower ones crossed at once are recorded, not repeated)
    period: str


def thresholds_of(obj: Mapping[str, Any]) -> list[int]:
    alerts = (obj.get("spec") or {}).get("alerts") or {}
    return sorted(set(alerts.get("thresholds") or DEFAULT_ALERT_THRESHOLDS))


def budgets_of(usage: Mapping[str, Any] | None) -> list[Budget]:
    """The limits of a key or Budget, from its mirrored usage: the monthly tokens and money, and
    any `budgets` entries ({name, used, limit, unit}) a usage report carries."""
    if not usage:
        return []
    found = []
    if usage.get("remaining") is not None:
        tokens = int(usage.get("tokens") or 0)
        found.append(Budget("monthlyTokens", tokens, tokens + int(usage["remaining"])))
    if usage.get("remainingCost") is not None:
        spent = _amount(usage.get("cost"))
        found.append(Budget("monthlyCost", spent, spent + _amount(usage["remainingCost"]), str(usage.get("currency") or "")))
    for item in usage.get("budgets") or []:
        if isinstance(item, Mapping) and item.get("limit"):
            found.append(Budget(str(item["name"]), float(item.get("used") or 0), float(item["limit"]),
                                str(item.get("unit") or "")))
    return found


def _amount(value: object) -> float:
    try:
        return float(str(value))
    except ValueError:
        return 0.0


def crossed(budget: Budget, thresholds: Iterable[int]) -> list[int]:
    if budget.limit <= 0:
        return []
    return [t for t in thresholds if budget.used * 100 >= budget.limit * t]


def alert_state(budgets: Sequence[Budget], thresholds: Sequence[int], period: str | None,
                previous: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The thresholds crossed this period: what was fired already plus what is crossed now."""
    if not period:
        return dict(previous) if previous else None
    before = previous.get("fired") or {} if previous and previous.get("period") == period else {}
    fired: dict[str, list[int]] = {name: sorted(set(values)) for name, values in before.items()}
    for budget in budgets:
        now = crossed(budget, thresholds)
        if now:
            fired[budget.name] = sorted(set(fired.get(budget.name, [])) | set(now))
    return {"period": period, "fired": fired}


def new_crossings(previous: Mapping[str, Any] | None, state: Mapping[str, Any] | None,
                  budgets: Sequence[Budget]) -> list[Crossing]:
    """What `state` fired that `previous` had not: one crossing per budget, its highest new threshold."""
    if not state:
        return []
    period = str(state.get("period"))
    before = previous.get("fired") or {} if previous and previous.get("period") == period else {}
    by_name = {b.name: b for b in budgets}
    out = []
    for name, values in sorted((state.get("fired") or {}).items()):
        fresh = set(values) - set(before.get(name, []))
        if fresh and name in by_name:
            out.append(Crossing(by_name[name], max(fresh), period))
    return out


def describe(budget: Budget, threshold: int, period: str) -> str:
    return (f"{threshold} % of the {budget.name} budget is used: {budget.used:g} of {budget.limit:g} "
            f"{budget.unit} in {period}").replace("  ", " ")


def alert_condition(state: Mapping[str, Any] | None, budgets: Sequence[Budget],
                    thresholds: Sequence[int]) -> Condition:
    fired = (state or {}).get("fired") or {}
    by_name = {b.name: b for b in budgets}
    worst: tuple[int, str] | None = None
    for name, values in fired.items():
        if values and name in by_name and (worst is None or max(values) > worst[0]):
            worst = (max(values), name)
    if worst is None:
        lowest = min(thresholds) if thresholds else 100
        return Condition(type=CONDITION, status="False", reason="BelowThresholds",
                         message=f"No budget has reached {lowest} % this period" if budgets
                         else "No monthly limit to alert on")
    threshold, name = worst
    return Condition(type=CONDITION, status="True", reason=f"Crossed{threshold}Percent",
                     message=describe(by_name[name], threshold, str((state or {}).get("period"))))


def evaluate(obj: Mapping[str, Any], usage: Mapping[str, Any] | None,
             previous: Mapping[str, Any] | None) -> tuple[dict[str, Any] | None, Condition]:
    """The alert state (`status.budgetAlerts`) and BudgetAlert condition of a key or Budget, from
    its mirrored usage and the state its status holds."""
    budgets, thresholds = budgets_of(usage), thresholds_of(obj)
    state = alert_state(budgets, thresholds, (usage or {}).get("month"), previous)
    return state, alert_condition(state, budgets, thresholds)


def cloud_event(obj: Mapping[str, Any], crossing: Crossing, now: datetime) -> dict[str, Any]:
    """A CloudEvents 1.0 event in structured JSON mode, about an ApiKey or a Budget. Its id is the
    same for every retry of one alert, so receivers can drop repeats."""
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    event_type, plural = EVENT_TYPES[str(obj.get("kind") or "ApiKey")]
    budget = crossing.budget
    ref = {"namespace": namespace, "name": name}
    about = ({"apiKey": {**ref, "consumer": (obj.get("spec") or {}).get("consumer")}} if plural == "apikeys"
             else {"teamBudget": {**ref, "keys": list((obj.get("status") or {}).get("keys") or [])}})
    return {
        "specversion": "1.0",
        "id": f"{meta.get('uid') or namespace + '/' + name}/{crossing.period}/{budget.name}/{crossing.threshold}",
        "source": f"/apis/lockgate.io/v1alpha1/namespaces/{namespace}/{plural}/{name}",
        "type": event_type,
        "subject": f"{namespace}/{name}",
        "time": rfc3339(now),
        "datacontenttype": "application/json",
        "data": {
            **about,
            "budget": budget.name, "unit": budget.unit, "threshold": crossing.threshold,
            "used": budget.used, "limit": budget.limit, "ratio": round(budget.used / budget.limit, 6),
            "period": crossing.period, "message": describe(budget, crossing.threshold, crossing.period),
        },
    }


def signature(body: bytes, secret: bytes) -> str:
    """The value of X-Lockgate-Signature-256: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
