"""Budget: a monthly budget in tokens and money that several ApiKeys spend from (a team's)."""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from lockgate.api.alerts import BudgetAlerts, BudgetAlertState
from lockgate.api.meta import ApiModel, ResourceStatus

CURRENCY_PATTERN = r"^[A-Z]{3}$"
MAX_COST = 1_000_000_000  # a monthly money limit, in currency units (kept exact as micro-units in a 64-bit counter)
NEEDS_A_LIMIT = "set monthlyTokens, monthlyCost or both"


class BudgetSpec(ApiModel):
    """A team's monthly limits, shared by the ApiKeys of this namespace that name the Budget in spec.budgets."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "has(self.monthlyTokens) || has(self.monthlyCost)", "message": NEEDS_A_LIMIT},
    ]})

    monthly_tokens: int | None = Field(default=None, ge=1, description="Tokens per calendar month (UTC), all keys together.")
    monthly_cost: float | None = Field(
        default=None, ge=0, le=MAX_COST,
        description="Money per calendar month (UTC), all keys together, at the models' prices (six decimals at most).")
    currency: str = Field(default="USD", pattern=CURRENCY_PATTERN,
                          description="Currency of monthlyCost; only models priced in it count against it.")
    alerts: BudgetAlerts | None = Field(
        default=None, description="Alert thresholds and webhook; omitted = 50, 80 and 100 % with no webhook.")

    @model_validator(mode="after")
    def _check(self) -> BudgetSpec:
        if self.monthly_tokens is None and self.monthly_cost is None:
            raise ValueError(NEEDS_A_LIMIT)
        return self


class BudgetUsage(ApiModel):
    """This month's spending from a Budget, as the proxies counted it."""

    month: str = Field(description="Calendar month, UTC, as YYYY-MM.")
    tokens: int = Field(ge=0, description="Tokens used this month by the keys spending from the Budget.")
    remaining: int | None = Field(default=None, description="Tokens left this month, when monthlyTokens is set.")
    cost: str = Field(description="Money spent this month, a decimal in the Budget's currency.")
    remaining_cost: str | None = Field(default=None, description="Money left this month, when monthlyCost is set.")
    currency: str = Field(description="The currency of cost and remainingCost.")
    requests: int = Field(default=0, ge=0, description="Requests made this month.")


class BudgetStatus(ResourceStatus):
    """What the operator reports on a Budget."""

    keys: list[str] = Field(default_factory=list, description="The ApiKeys spending from this Budget.")
    usage: BudgetUsage | None = Field(default=None, description="This month's spending, refreshed from the proxies.")
    budget_alerts: BudgetAlertState | None = Field(default=None, description="Thresholds crossed this period.")
