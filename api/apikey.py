"""ApiKey: a consumer's key, its allowlists and its limits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from lockgate.api.alerts import DEFAULT_ALERT_THRESHOLDS as DEFAULT_ALERT_THRESHOLDS
from lockgate.api.alerts import BudgetAlerts, BudgetAlertState
from lockgate.api.alerts import BudgetWebhook as BudgetWebhook
from lockgate.api.budget import CURRENCY_PATTERN, MAX_COST
from lockgate.api.cache import KeyCache
from lockgate.api.meta import DNS_SUBDOMAIN, ApiModel, ResourceStatus, SecretKeyRef

GENERATED_KEY_FIELD = "api-key"
ROTATE_ANNOTATION = "lockgate.io/rotate"
# During a rotation the key Secret also holds the previous key, honoured until
# the RFC 3339 instant in this annotation of the Secret.
PREVIOUS_KEY_FIELD = "previous-api-key"
PREVIOUS_KEY_EXPIRES_ANNOTATION = "lockgate.io/previous-key-expires"
# The rotate value handled last, on the key Secret.
ROTATED_FOR_ANNOTATION = "lockgate.io/rotated-for"
# Lockgate writes a key only into a Secret with this label: the ones it
# creates, and ones a person marked for it.
MANAGED_LABEL, MANAGED_VALUE = "app.kubernetes.io/managed-by", "lockgate"
SECRET_NOT_MANAGED = "SecretNotManaged"


def key_secret_owner(owner_references: Iterable[Mapping[str, Any]], apikey_name: str,
                     apikey_uid: str | None) -> str | None:
    """The name of another ApiKey that owns this key Secret, if one does."""
    for owner in owner_references:
        if owner.get("kind") != "ApiKey" or not str(owner.get("apiVersion", "")).startswith("lockgate.io/"):
            continue
        ours = owner.get("uid") == apikey_uid if apikey_uid else owner.get("name") == apikey_name
        if not ours:
            return str(owner.get("name"))
    return None


def key_secret_problem(namespace: str, secret_name: str, labels: Mapping[str, str],
                       owner_references: Iterable[Mapping[str, Any]], apikey_name: str,
                       apikey_uid: str | None) -> str | None:
    """Why Lockgate may not write an ApiKey's key into this existing Secret
    (a message for the ApiKey's status), or None when it may."""
    other = key_secret_owner(owner_references, apikey_name, apikey_uid)
    if other is not None:
        return f"Secret {namespace}/{secret_name} holds the key of ApiKey {other}; give this ApiKey another secretName"
    if labels.get(MANAGED_LABEL) != MANAGED_VALUE:
        return (f"Secret {namespace}/{secret_name} exists and is not managed by Lockgate, so Lockgate writes no key "
                f"into it: label it {MANAGED_LABEL}={MANAGED_VALUE} to hand it over, or name it in "
                "spec.existingSecret to bring your own key")
    return None


class KeyLimits(ApiModel):
    """Limits of one consumer key; omitted limits do not apply."""

    rpm: int | None = Field(default=None, ge=1, description="Requests per minute.")
    tpm: int | None = Field(default=None, ge=1, description="Tokens (input + output) per minute.")
    monthly_tokens: int | None = Field(default=None, ge=1, description="Tokens per calendar month, UTC.")
    monthly_cost: float | None = Field(
        default=None, ge=0, le=MAX_COST,
        description="Money per calendar month, UTC, in the key's currency at the models' prices (six decimals at most).")


class ApiKeySpec(ApiModel):
    """Who the key belongs to, where it is kept, and what it may do."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.secretName) != has(self.existingSecret)",
                    "message": "set exactly one of secretName and existingSecret",
                }
            ]
        }
    )

    consumer: str = Field(min_length=1, max_length=128, description="The consumer dimension in metrics and usage.")
    secret_name: str | None = Field(
        default=None, pattern=DNS_SUBDOMAIN, max_length=253,
        description="Secret the operator generates the key into (key \"api-key\"). It creates the Secret when absent;"
                    " an existing one must carry the label app.kubernetes.io/managed-by=lockgate.",
    )
    existing_secret: SecretKeyRef | None = Field(
        default=None, description="Bring your own key instead of a generated one; Lockgate only reads this Secret.")
    expires_at: datetime | None = Field(default=None, description="After this instant every call gets 401; omitted = never.")
    models: list[str] | None = Field(default=None, description="Model name globs this key may use; omitted = all models.")
    limits: KeyLimits | None = Field(default=None, description="Limits across all models of this key.")
    model_limits: dict[str, KeyLimits] = Field(default_factory=dict, description="Per-model limits, on top of limits.")
    routes: list[str] | None = Field(default=None, description="Template Routes this key may call; omitted = all.")
    cache: KeyCache | None = Field(default=None, description="Response caching for this key over its Routes' policy.")
    mcp_servers: list[str] | None = Field(
        default=None, description="MCPServers this key may use: a name in this namespace, or namespace/name of a server that"
        " allows this namespace; omitted = none.",
    )
    mcp_tools: dict[str, list[str]] = Field(
        default_factory=dict, description="Per MCPServer, the tool name globs this key may call; a server not listed allows all its tools."
    )
    currency: str = Field(default="USD", pattern=CURRENCY_PATTERN,
                          description="Currency of the key's monthlyCost limits and its reported spend.")
    budgets: list[str] = Field(
        default_factory=list, max_length=16,
        description="Budgets (team budgets) in this namespace the key also spends from; each must admit a request.")
    alerts: BudgetAlerts | None = Field(
        default=None, description="Budget alert thresholds and webhook; omitted = 50, 80 and 100 % with no webhook.")
    priority: Literal["interactive", "batch"] = Field(
        default="interactive", description="Class in the queues for capacity: interactive requests are admitted "
                                           "before batch ones (batch waits at most the provider's queue.maxBatchDelay "
                                           "behind them).")
    queue_weight: int = Field(default=1, ge=1, le=100,
                              description="Share of this consumer's turns in the queues for capacity, against weight 1.")
    rotation_grace: str = Field(
        default="1h", pattern=r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$",
        description="How long the previous key keeps working after a rotation.",
    )

    @model_validator(mode="after")
    def _check(self) -> ApiKeySpec:
        if (self.secret_name is None) == (self.existing_secret is None):
            raise ValueError("set exactly one of secretName and existingSecret")
        return self


class KeyUsage(ApiModel):
    """This month's usage of a key, as the proxies counted it."""

    month: str = Field(description="Calendar month, UTC, as YYYY-MM.")
    tokens: int = Field(ge=0, description="Tokens used this month.")
    remaining: int | None = Field(default=None, description="Tokens left this month, if the key has a budget.")
    requests: int = Field(default=0, ge=0, description="Requests made this month.")
    cost: str | None = Field(default=None, description="Money spent this month, a decimal in the key's currency.")
    remaining_cost: str | None = Field(default=None, description="Money left this month, if the key has a monthlyCost.")
    currency: str | None = Field(default=None, description="The currency of cost and remainingCost.")


class ApiKeyStatus(ResourceStatus):
    """What the operator reports on an ApiKey."""

    secret_name: str | None = Field(default=None, description="The Secret holding the key.")
    key_hash_prefix: str | None = Field(default=None, description="First characters of the key's SHA-256, to tell keys apart.")
    rotated_at: datetime | None = Field(default=None, description="When the key was last rotated.")
    usage: KeyUsage | None = Field(default=None, description="This month's usage, refreshed from the proxies.")
    budget_alerts: BudgetAlertState | None = Field(default=None, description="Budget thresholds crossed this period.")
