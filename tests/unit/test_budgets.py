"""Money and team budgets, pure: their quota groups, the memory store counting money apart from tokens,
the reports, and the operator's merge of replicas' reports into statuses."""

from __future__ import annotations

from lockgate.api import ir
from lockgate.operator.usage import exhausted_condition, merge_usage
from lockgate.proxy.quota.memory_store import MemoryStore
from lockgate.proxy.quota.plan import BudgetSpec, Group, budget_groups, cost_group
from lockgate.proxy.quota.spend import budget_report, key_budgets, key_spend

KEY = ir.ConsumerKey(id="ns/k", consumer="k", hashes=(), limits=ir.RateLimits(monthly_tokens=100, monthly_cost=5000),
                     model_limits={"gpt-*": ir.RateLimits(monthly_cost=3000)})
TEAM = ir.Budget(id="ns/team", monthly_tokens=1000, monthly_cost=20_000_000, currency="USD")
MONTH, END = "2026-11", 1_796_083_200.0


def test_a_key_money_group_and_a_team_budget_two_groups() -> None:
    assert cost_group(KEY, "gpt-4o") == Group("key-cost:ns/k", (), (BudgetSpec("cost", 5000),
                                                                      BudgetSpec("model:gpt-4o", 3000)), "cost")
    tokens, money = budget_groups(TEAM)
    assert tokens == Group("budget:ns/team", (), (BudgetSpec("tokens", 1000),))
    assert money == Group("budget-cost:ns/team", (), (BudgetSpec("cost", 20_000_000),), "cost")
    assert money.amount(10, 700) == 700 and tokens.amount(10, 700) == 10


def test_the_memory_store_counts_money_in_money_groups_and_tokens_in_the_others() -> None:
    store = MemoryStore()
    groups = [Group("key:ns/k", (), (BudgetSpec("tokens", 100),)), cost_group(KEY, "gpt-4o")]
    first = store.reserve_now(groups, "r1", 40, MONTH, END, spend=2500)
    assert [r.month for r in first] == [{"tokens": 40}, {"cost": 2500, "model:gpt-4o": 2500}]
    refused = store.reserve_now(groups, "r2", 10, MONTH, END, spend=600)  # 3100 > the model's 3000
    assert refused[1].refusal is not None and refused[1].refusal.limit_name == "model:gpt-4o"
    store.settle_now(groups, "r1", MONTH, END, -10, 30, False, spend_delta=-1000)  # used 30 tokens, 1500 money
    assert store.reserve_now(groups, "r3", 10, MONTH, END, spend=1500)[1].month == {"cost": 3000, "model:gpt-4o": 3000}


def test_a_compiled_plan_counts_money_like_the_general_path() -> None:
    store = MemoryStore()
    plan = store.compile([cost_group(KEY, "gpt-4o")])
    taken = plan.reserve("r1", 10, MONTH, 2000)
    assert taken is not None
    assert plan.reserve("r2", 10, MONTH, 1001) is None  # 3001 > 3000, nothing reserved
    plan.settle("r1", taken[1], MONTH, 0, 10, -500)
    assert store._months[MONTH]["key-cost:ns/k"] == {"cost": 1500, "model:gpt-4o": 1500, "requests": 1}


def test_reports_give_money_as_exact_decimals_with_what_is_left() -> None:
    spend = key_spend(KEY, {"cost": 1234, "model:gpt-4o": 1234, "requests": 2})
    assert spend == {"cost": "0.001234", "remainingCost": "0.003766", "currency": "USD",
                     "modelCosts": {"gpt-4o": "0.001234"}}
    report = budget_report(TEAM, MONTH, {"tokens": 300, "requests": 4}, {"cost": 25_000_000})
    assert (report["tokens"], report["remaining"], report["cost"], report["remainingCost"]) == (
        300, 700, "25.000000", "0.000000")
    uses = key_budgets(KEY, {"tokens": 120}, {"cost": 10})
    assert [(u.unit, u.used, u.limit, u.remaining) for u in uses] == [("tokens", 120, 100, 0), ("cost", 10, 5000, 4990)]


def test_the_operator_adds_replicas_money_exactly_or_takes_a_shared_count_once() -> None:
    one = {"month": MONTH, "tokens": 10, "requests": 1, "cost": "0.100000", "remainingCost": "0.900000",
           "currency": "USD", "limits": {"monthly_cost": 1_000_000}}
    two = {**one, "tokens": 20, "requests": 2, "cost": "0.200001"}
    summed = merge_usage([{"ns/k": one}, {"ns/k": two}])["ns/k"]
    assert (summed["cost"], summed["remainingCost"], summed["currency"]) == ("0.300001", "0.699999", "USD")
    shared = merge_usage([{"ns/k": {**one, "shared": True}}, {"ns/k": {**one, "shared": True}}])["ns/k"]
    assert shared["cost"] == "0.100000"


def test_a_spent_money_budget_is_exhausted() -> None:
    spent = exhausted_condition({"month": MONTH, "remaining": None, "remainingCost": "0.000000"})
    assert (spent.status, spent.reason) == ("True", "MonthlyBudgetExhausted") and "money" in spent.message
    left = exhausted_condition({"month": MONTH, "remaining": None, "remainingCost": "1.500000", "currency": "EUR"})
    assert (left.status, left.message) == ("False", "1.500000 EUR left this month")
