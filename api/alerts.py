"""Budget alerts, shared by ApiKeys and team Budgets: the thresholds, the webhook, and the
thresholds already crossed this period (kept in the status)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from lockgate.api.meta import ApiModel, SecretKeyRef

DEFAULT_ALERT_THRESHOLDS = (50, 80, 100)


class BudgetWebhook(ApiModel):
    """Where budget alerts are POSTed, as CloudEvents (structured JSON)."""

    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048,
                     description="The receiver's URL; each alert is POSTed once, retried on failures.")
    secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="A Secret key whose value signs each delivery: header X-Lockgate-Signature-256 is "
                    "sha256=<hex HMAC-SHA256 of the body>.")


class BudgetAlerts(ApiModel):
    """When to tell someone a budget is running out."""

    thresholds: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=lambda: list(DEFAULT_ALERT_THRESHOLDS), max_length=10,
        description="Percentages of each monthly limit (monthlyTokens, monthlyCost) that raise the BudgetAlert "
                    "condition, a Warning Event and a webhook delivery; each fires once per period.")
    webhook: BudgetWebhook | None = Field(default=None, description="Also POST each alert here.")


class BudgetAlertState(ApiModel):
    """The budget thresholds already crossed in the current period (each fires once per period)."""

    period: str = Field(description="The period the thresholds were crossed in: the calendar month, UTC, YYYY-MM.")
    fired: dict[str, list[int]] = Field(
        default_factory=dict, description="Per budget (monthlyTokens, ...), the thresholds crossed this period.")
