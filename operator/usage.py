"""ApiKey usage mirrored from the proxies: pure aggregation and conditions.

Each replica answers GET /usage with {key id: {"month", "tokens", "remaining",
"requests", "limits", ...}}. With a shared store (Redis) every replica reports
the same totals, so one report is the truth; with per-replica memory stores
each counts only its own traffic, so reports add up. A report may say which
(`"shared": true`); otherwise identical reports from several replicas are
taken as one shared count (independent counters agreeing exactly is unlikely
and would only make the mirror undercount).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from lockgate.api.meta import Condition
from lockgate.api.prices import format_amount, parse_amount


def merge_usage(reports: Iterable[Mapping[str, Any] | None]) -> dict[str, dict[str, Any]]:
    """Per key id (or Budget id, from GET /budgets), the usage across replicas (unreachable replicas
    skipped)."""
    per_key: dict[str, list[Mapping[str, Any]]] = {}
    for report in reports:
        for key_id, usage in (report or {}).items():
            if isinstance(usage, Mapping):
                per_key.setdefault(key_id, []).append(usage)
    return {key_id: _merge_one(items) for key_id, items in per_key.items()}


def _merge_one(items: list[Mapping[str, Any]]) -> dict[str, Any]:
    month = max(str(u.get("month", "")) for u in items)
    current = [u for u in items if str(u.get("month", "")) == month]
    counts = {(u.get("tokens"), u.get("requests")) for u in current}
    shared = any(u.get("shared") for u in current) or (len(current) > 1 and len(counts) == 1)
    combine = max if shared else sum
    tokens = int(combine(int(u.get("tokens") or 0) for u in current))
    requests = int(combine(int(u.get("requests") or 0) for u in current))
    # The budget is the key's monthly limit, or what a report has left plus what it counted.
    budgets = [int((u.get("limits") or {}).get("monthly_tokens") or 0) for u in current]
    budgets = [b for b in budgets if b] or [
        int(u["remaining"]) + int(u.get("tokens") or 0) for u in current if u.get("remaining") is not None]
    remaining = max(0, max(budgets) - tokens) if budgets else None
    merged: dict[str, Any] = {"month": month, "tokens": tokens, "remaining": remaining, "requests": requests,
                              "windows": _windows(current, combine)}
    merged.update(_merge_money(current, combine))
    return merged


def _merge_money(current: list[Mapping[str, Any]], combine: Callable[[Iterable[int]], int]) -> dict[str, Any]:
    """This month's spend across replicas (decimal strings, added exactly as micro-units), what is
    left of the money limit (`limits.monthly_cost`, micro-units), and the currency."""
    reported = [u for u in current if u.get("cost") is not None]
    if not reported:
        return {}
    spent = int(combine(_micros(u["cost"]) for u in reported))
    limits = [int((u.get("limits") or {}).get("monthly_cost") or 0) for u in reported]
    limits = [x for x in limits if x] or [
        _micros(u["remainingCost"]) + _micros(u["cost"]) for u in reported if u.get("remainingCost") is not None]
    left = format_amount(max(0, max(limits) - spent)) if limits else None
    return {"cost": format_amount(spent), "remainingCost": left, "currency": reported[0].get("currency")}


def _micros(amount: object) -> int:
    try:
        return parse_amount(str(amount))
    except ValueError:
        return 0


def budget_usage_id(budget_id: str) -> str:
    """Where a Budget's usage sits among the keys' (a key and a Budget may share a namespace/name)."""
    return f"Budget/{budget_id}"


# Per-minute windows: (name, what the report's window counts, the limit in the report's limits).
WINDOWS = (("rpm", "requests", "rpm"), ("tpm", "tokens", "tpm"))


def _windows(current: list[Mapping[str, Any]], combine: Any) -> dict[str, dict[str, int]]:
    """Used and limit of the key's rate windows that have a limit (the window now, across replicas)."""
    out = {}
    for name, used_field, limit_field in WINDOWS:
        limit = max(int((u.get("limits") or {}).get(limit_field) or 0) for u in current)
        if limit:
            used = int(combine(int((u.get("window") or {}).get(used_field) or 0) for u in current))
            out[name] = {"used": used, "limit": limit}
    return out


def expired_condition(expires_at: str | datetime | None, now: datetime) -> Condition:
    if expires_at is None:
        return Condition(type="Expired", status="False", reason="NoExpiry", message="The key does not expire")
    moment = expires_at if isinstance(expires_at, datetime) else datetime.fromisoformat(str(expires_at).replace("Z", "+00:00"))
    if moment <= now:
        return Condition(type="Expired", status="True", reason="Expired",
                         message=f"The key expired at {moment.isoformat()}; every call gets 401")
    return Condition(type="Expired", status="False", reason="Valid", message=f"The key is valid until {moment.isoformat()}")


def exhausted_condition(usage: Mapping[str, Any] | None) -> Condition:
    if usage and usage.get("remainingCost") is not None and _micros(usage["remainingCost"]) <= 0:
        return Condition(type="Exhausted", status="True", reason="MonthlyBudgetExhausted",
                         message=f"The monthly money budget is used up for {usage.get('month')}")
    remaining = (usage or {}).get("remaining")
    if remaining is None and usage and usage.get("remainingCost") is not None:
        return Condition(type="Exhausted", status="False", reason="WithinBudget",
                         message=f"{usage['remainingCost']} {usage.get('currency') or ''} left this month".rstrip())
    if remaining is None:
        return Condition(type="Exhausted", status="False", reason="NoBudget" if usage else "NoUsage",
                         message="No monthly token budget is being consumed")
    if int(remaining) <= 0:
        return Condition(type="Exhausted", status="True", reason="MonthlyBudgetExhausted",
                         message=f"The monthly token budget is used up for {usage.get('month') if usage else ''}")
    return Condition(type="Exhausted", status="False", reason="WithinBudget",
                     message=f"{remaining} tokens left this month")
