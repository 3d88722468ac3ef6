"""Money and team budgets as reported: pure, from the month counters a store keeps.

The one place that says, per budget, what is used and what the limit is
(`BudgetUse`): the admin `/usage` report, the operator's statuses and any alerting
over budgets read it from here. Money is counted in micro-units (1e-6) of the
budget's currency and reported as exact decimal strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from lockgate.api.ir import Budget, ConsumerKey
from lockgate.api.prices import format_amount
from lockgate.proxy.quota.budget import remaining
from lockgate.proxy.quota.plan import MONTH_COST, MONTH_REQUESTS, MONTH_TOKENS


@dataclass(frozen=True)
class BudgetUse:
    """One monthly budget: whose (an ApiKey's or a team Budget's id), in what unit, used and limit."""

    owner: str  # "ApiKey ns/name" or "Budget ns/name"
    unit: Literal["tokens", "cost"]
    used: int  # tokens, or micro-units of `currency`
    limit: int | None
    currency: str = ""

    @property
    def remaining(self) -> int | None:
        return remaining(self.used, self.limit)


def key_budgets(key: ConsumerKey, tokens: Mapping[str, int], cost: Mapping[str, int]) -> list[BudgetUse]:
    """A key's own budgets (tokens and money, key-wide) from its month counters."""
    owner = f"ApiKey {key.id}"
    return [BudgetUse(owner, "tokens", tokens.get(MONTH_TOKENS, 0), key.limits.monthly_tokens),
            BudgetUse(owner, "cost", cost.get(MONTH_COST, 0), key.limits.monthly_cost, key.currency)]


def team_budgets(budget: Budget, tokens: Mapping[str, int], cost: Mapping[str, int]) -> list[BudgetUse]:
    owner = f"Budget {budget.id}"
    return [BudgetUse(owner, "tokens", tokens.get(MONTH_TOKENS, 0), budget.monthly_tokens),
            BudgetUse(owner, "cost", cost.get(MONTH_COST, 0), budget.monthly_cost, budget.currency)]


def _amount(micros: int | None) -> str | None:
    return None if micros is None else format_amount(micros)


def key_spend(key: ConsumerKey, cost: Mapping[str, int]) -> dict[str, object]:
    """The money part of a key's usage report: this month's spend, what is left, per model."""
    money = key_budgets(key, {}, cost)[1]
    models = {field.removeprefix("model:"): format_amount(value) for field, value in cost.items()
              if field.startswith("model:")}
    return {"cost": format_amount(money.used), "remainingCost": _amount(money.remaining), "currency": money.currency,
            "modelCosts": models}


def budget_report(budget: Budget, month: str, tokens: Mapping[str, int], cost: Mapping[str, int]) -> dict[str, object]:
    """A team Budget's usage report: tokens and money this month, what is left, and its limits."""
    used, money = team_budgets(budget, tokens, cost)
    return {
        "month": month,
        "tokens": used.used,
        "remaining": used.remaining,
        "cost": format_amount(money.used),
        "remainingCost": _amount(money.remaining),
        "currency": money.currency,
        "requests": tokens.get(MONTH_REQUESTS, 0),
        "limits": {"monthly_tokens": used.limit, "monthly_cost": money.limit},  # cost: micro-units
    }
