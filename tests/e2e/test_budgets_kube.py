"""Money on a real kube-apiserver: a priced model's spend mirrored into the ApiKey's status next to its
tokens, a team Budget's spend and what is left in its own status, and a key naming a missing Budget refused."""

from __future__ import annotations

from typing import Any

from tests.e2e.lockgate_env import (  # noqa: F401  (fixtures)
    Lockgate, apikey, backend, crds, lockgate, route, wait_for,
)


def budget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "lockgate.io/v1alpha1", "kind": "Budget", "metadata": {"name": name}, "spec": spec}


def test_spend_is_mirrored_into_apikey_and_budget_status(lockgate: Lockgate) -> None:
    upstream = lockgate.upstreams.start("counted")  # reports 11 input and 7 output tokens
    lockgate.start_operator("--usage-interval", "0.5")
    proxy = lockgate.start_proxy()
    objects = backend("a", upstream.port)
    objects[-1]["spec"]["models"] = [{"name": "m1", "pricing": {"input": 2, "output": 10}}]
    lockgate.apply_objects([*objects, route(), budget("platform", monthlyCost=1, monthlyTokens=100000),
                            apikey("team", limits={"monthlyCost": 0.5}, budgets=["platform"]),
                            apikey("lost", budgets=["missing"])])
    key = wait_for(lambda: lockgate.secret_value("team-key"), 15, "the generated key")
    lockgate.works(proxy, key)
    lockgate.chat(proxy, key)

    def usage(kind: str, name: str) -> dict[str, Any] | None:
        found = ((lockgate.get(kind, name) or {}).get("status") or {}).get("usage")
        return found if found and found["requests"] >= 2 else None

    # Each request: 11 x 2 + 7 x 10 = 92 micro-units.
    spent = wait_for(lambda: usage("apikey", "team"), 15, "spend in the ApiKey status")
    assert (spent["tokens"], spent["cost"], spent["remainingCost"], spent["currency"]) == (
        36, "0.000184", "0.499816", "USD")
    team = wait_for(lambda: usage("budget", "platform"), 15, "spend in the Budget status")
    assert (team["tokens"], team["remaining"], team["cost"], team["remainingCost"]) == (36, 99964, "0.000184", "0.999816")
    assert lockgate.obj("budget", "platform")["status"]["keys"] == ["team"]
    assert lockgate.condition_is("budget", "platform", "Exhausted", "False")
    lost = wait_for(lambda: lockgate.condition_is("apikey", "lost", "Accepted", "False"), 10, "the key refused")
    assert lost["reason"] == "BudgetNotFound" and "missing" in lost["message"]
