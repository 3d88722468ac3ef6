"""Usage reports read from a quota store: a key's month and windows, a team Budget's month."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from lockgate.api.ir import Budget, ConsumerKey
from lockgate.proxy.quota.budget import remaining
from lockgate.proxy.quota.plan import MONTH_REQUESTS, MONTH_TOKENS, Group, WindowSpec, budget_groups, model_field
from lockgate.proxy.quota.spend import budget_report, key_spend
from lockgate.proxy.quota.store import QuotaStore
from lockgate.proxy.quota.window import WindowState


async def keys_report(store: QuotaStore, keys: Sequence[ConsumerKey], month: str) -> dict[str, dict[str, object]]:
    """Per key id: its month ('YYYY-MM') in tokens, requests and money, its windows, per model."""
    reports = await asyncio.gather(*(key_report(store, k, month) for k in keys))
    return {k.id: r for k, r in zip(keys, reports)}


async def key_report(store: QuotaStore, key: ConsumerKey, month: str) -> dict[str, object]:
    windows = [WindowSpec("all", key.limits.rpm, key.limits.tpm)]
    windows += [WindowSpec(model_field(m), lim.rpm, lim.tpm) for m, lim in key.model_limits.items()
                if not any(c in m for c in "*?[") and (lim.rpm is not None or lim.tpm is not None)]
    counters, states = await store.peek(Group(f"key:{key.id}", tuple(windows)), month)
    cost, _ = await store.peek(Group(f"key-cost:{key.id}", (), unit="cost"), month)
    tokens = counters.get(MONTH_TOKENS, 0)
    models: dict[str, dict[str, object]] = {}
    for field, value in counters.items():
        if field.startswith("model:"):
            name = field.removeprefix("model:")
            limit = key.model_limits.get(name)
            monthly = limit.monthly_tokens if limit else None
            models[name] = {"tokens": value, "remaining": remaining(value, monthly)}
    for spec, state in zip(windows[1:], states[1:]):
        models.setdefault(spec.name.removeprefix("model:"), {"tokens": 0})["window"] = window_report(state)
    return {
        "month": month,
        "tokens": tokens,
        "remaining": remaining(tokens, key.limits.monthly_tokens),
        "requests": counters.get(MONTH_REQUESTS, 0),
        "limits": key.limits.model_dump(),
        "window": window_report(states[0]),
        "models": models,
        **key_spend(key, cost),
    }


async def budgets_report(store: QuotaStore, budgets: Sequence[Budget], month: str) -> dict[str, dict[str, object]]:
    """Per Budget id: its month in tokens and money, against its limits."""
    async def one(budget: Budget) -> dict[str, object]:
        tokens_group, cost_group = budget_groups(budget)
        tokens, _ = await store.peek(tokens_group, month)
        cost, _ = await store.peek(cost_group, month)
        return budget_report(budget, month, tokens, cost)

    reports = await asyncio.gather(*(one(b) for b in budgets))
    return {b.id: r for b, r in zip(budgets, reports)}


def window_report(state: WindowState) -> dict[str, object]:
    return {"requests": state.requests, "tokens": state.tokens, "rpm": state.rpm, "tpm": state.tpm,
            "resetSeconds": round(state.reset_requests, 3)}
