"""What one admission checks: limits grouped by the Redis hash slot they live in.

A consumer's windows and monthly counters share the key id as hash tag, so one
Lua call checks them atomically; a provider model's windows (shared by every
consumer) carry their own tag. Pure: built from the IR, tested without I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Literal

from lockgate.api.ir import Budget, ConsumerKey, RateLimits
from lockgate.proxy.quota.window import WindowState

MONTH_TOKENS = "tokens"  # month-hash field: the key's tokens across all models
MONTH_REQUESTS = "requests"  # month-hash field: the key's requests (counted, never limited)
MONTH_COST = "cost"  # month-hash field of a cost group: the money spent across all models (micro-units)
Unit = Literal["tokens", "cost"]


@dataclass(frozen=True)
class WindowSpec:
    name: str  # unique inside its group: "all", "model:<name>", "provider"
    rpm: int | None
    tpm: int | None


@dataclass(frozen=True)
class BudgetSpec:
    field: str  # field of the group's month hash
    limit: int | None  # None = counted but not limited


@dataclass(frozen=True)
class Group:
    tag: str  # hash tag: every key of the group lands in one Redis Cluster slot
    windows: tuple[WindowSpec, ...]
    budgets: tuple[BudgetSpec, ...] = ()
    unit: Unit = "tokens"  # what its budgets count: tokens, or money (micro-units; such a group has no windows)

    def amount(self, tokens: int, spend: int) -> int:
        """Of a request's tokens and money, what this group's budgets count."""
        return spend if self.unit == "cost" else tokens


@dataclass(frozen=True)
class Refusal:
    reason: Literal["requests", "tokens", "budget"]
    wait: float  # seconds until it would fit (inf: never, the request is larger than the limit)
    limit_name: str  # window name or budget field


@dataclass(slots=True)  # made per request: a frozen dataclass costs 5x to build
class GroupResult:
    refusal: Refusal | None
    windows: tuple[WindowState, ...] = ()
    month: dict[str, int] | None = None  # budget field -> used this month (after the reservation)


def model_field(model: str) -> str:
    return f"model:{model}"


def model_limits_for(key: ConsumerKey, model: str) -> RateLimits | None:
    """The key's per-model limits: an exact name wins over a glob."""
    if model in key.model_limits:
        return key.model_limits[model]
    for pattern, limits in key.model_limits.items():
        if fnmatchcase(model, pattern):
            return limits
    return None


def consumer_group(key: ConsumerKey, model: str) -> Group:
    windows: list[WindowSpec] = []
    if key.limits.rpm is not None or key.limits.tpm is not None:
        windows.append(WindowSpec("all", key.limits.rpm, key.limits.tpm))
    per_model = model_limits_for(key, model)
    if per_model is not None and (per_model.rpm is not None or per_model.tpm is not None):
        windows.append(WindowSpec(model_field(model), per_model.rpm, per_model.tpm))
    budgets = (BudgetSpec(MONTH_TOKENS, key.limits.monthly_tokens),
               BudgetSpec(model_field(model), per_model.monthly_tokens if per_model else None))
    return Group(f"key:{key.id}", tuple(windows), budgets)


def cost_group(key: ConsumerKey, model: str) -> Group:
    """The key's money this month: in all, and on `model` (micro-units of the key's currency)."""
    per_model = model_limits_for(key, model)
    return Group(f"key-cost:{key.id}", (), (BudgetSpec(MONTH_COST, key.limits.monthly_cost),
                                            BudgetSpec(model_field(model), per_model.monthly_cost if per_model else None)),
                 "cost")


def budget_groups(budget: Budget) -> tuple[Group, Group]:
    """A team Budget shared by several keys: its tokens and its money this month."""
    return (Group(f"budget:{budget.id}", (), (BudgetSpec(MONTH_TOKENS, budget.monthly_tokens),)),
            Group(f"budget-cost:{budget.id}", (), (BudgetSpec(MONTH_COST, budget.monthly_cost),), "cost"))


def provider_group(provider_id: str, model: str, limits: RateLimits) -> Group | None:
    if limits.rpm is None and limits.tpm is None:
        return None
    return Group(f"provider:{provider_id}/{model}", (WindowSpec("provider", limits.rpm, limits.tpm),))


def share(limit: int | None, replicas: int) -> int | None:
    """One replica's share of a limit when it must decide alone: rounded down, so the replicas
    together never admit more than the limit (a limit below the replica count leaves each none)."""
    if limit is None:
        return None
    return limit // max(1, replicas)


def local_share(group: Group, replicas: int, month_used: dict[str, int]) -> Group:
    """The group a replica enforces by itself while the shared store is down:
    rates divided by the replica count, budgets what was left when last seen, divided too."""
    windows = tuple(replace(w, rpm=share(w.rpm, replicas), tpm=share(w.tpm, replicas)) for w in group.windows)
    budgets = tuple(
        replace(b, limit=None if b.limit is None else share(max(0, b.limit - month_used.get(b.field, 0)), replicas))
        for b in group.budgets)
    return Group(group.tag, windows, budgets, group.unit)
