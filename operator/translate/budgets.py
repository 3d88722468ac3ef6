"""Budget -> ir.Budget, and an ApiKey's spec.budgets resolved against the accepted Budgets."""

from __future__ import annotations

from collections.abc import Mapping

from lockgate.api import ir
from lockgate.api.prices import MICROS
from lockgate.api.resources import ApiKey, Budget
from lockgate.operator.translate.conditions import Rejected


def money(amount: float | None) -> int | None:
    """A monthly money limit as micro-units (exact for amounts of up to six decimals)."""
    return None if amount is None else round(amount * MICROS)


def translate_budget(obj: Budget) -> ir.Budget:
    spec = obj.spec
    return ir.Budget(id=obj.ref, monthly_tokens=spec.monthly_tokens, monthly_cost=money(spec.monthly_cost),
                     currency=spec.currency)


def key_budgets(obj: ApiKey, budgets: Mapping[str, ir.Budget]) -> tuple[str, ...]:
    """The ids of the Budgets the key spends from. A Budget that is missing (or not accepted) or in
    another currency refuses the key: serving it without the budget would let it spend unchecked."""
    ns = obj.metadata.namespace
    ids = tuple(dict.fromkeys(f"{ns}/{name}" for name in obj.spec.budgets))
    missing = [i for i in ids if i not in budgets]
    if missing:
        raise Rejected("BudgetNotFound", f"spec.budgets: {', '.join(missing)} not found (or not accepted); "
                                         "a key is not served without the budgets it names")
    other = [i for i in ids if budgets[i].currency != obj.spec.currency and budgets[i].monthly_cost is not None]
    if other:
        raise Rejected("CurrencyMismatch", f"spec.budgets: {', '.join(other)} count money in another currency than "
                                           f"the key's {obj.spec.currency} (spec.currency)")
    return ids
