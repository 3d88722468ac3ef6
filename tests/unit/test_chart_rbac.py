"""The chart's RBAC: least privilege for the operator, resourceNames only for the proxy."""

from __future__ import annotations

from typing import Any

import pytest

from lockgate.api.config_shards import KEY_SHARDS, shard_name
from tests.unit.chart_support import NAMESPACE, REPO, Obj, of_kind, one, render

FULL = REPO / "tests" / "fixtures" / "chart-full-values.yaml"
RULE_KINDS = ("Role", "ClusterRole")
READ = {"get", "list", "watch"}

Rule = dict[str, Any]


def rules_of(objs: list[Obj], kind: str, name_suffix: str) -> dict[str, list[Rule]]:
    """Rules by namespace ('' for cluster scope) of the roles whose name ends with the suffix."""
    found: dict[str, list[Rule]] = {}
    for role in of_kind(objs, kind):
        if role["metadata"]["name"].endswith(name_suffix):
            found.setdefault(role["metadata"].get("namespace", ""), []).extend(role["rules"])
    return found


def verbs_for(rules: list[Rule], group: str, resource: str) -> set[str]:
    return {v for r in rules if group in r["apiGroups"] and resource in r["resources"] for v in r["verbs"]}


@pytest.fixture(scope="module", params=["default", "full", "all-namespaces"])
def objs(request: pytest.FixtureRequest) -> list[Obj]:
    if request.param == "full":
        return render([FULL])
    if request.param == "all-namespaces":
        return render(sets=["operator.allNamespaces=true"])
    return render()


def test_no_wildcards_anywhere(objs: list[Obj]) -> None:
    for role in [o for o in objs if o["kind"] in RULE_KINDS]:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), f"{role['metadata']['name']}: {field} has '*'"
            assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"])


def test_proxy_reads_only_its_own_config(objs: list[Obj]) -> None:
    assert not [o for o in objs if o["kind"] == "ClusterRoleBinding"
                and any(s["name"].endswith("-proxy") for s in o["subjects"])]
    by_ns = rules_of(objs, "Role", "-proxy")
    assert list(by_ns) == [NAMESPACE]
    rules = by_ns[NAMESPACE]
    assert {(r["resources"][0]) for r in rules} == {"configmaps", "secrets"}
    for rule in rules:
        assert rule["apiGroups"] == [""] and len(rule["resources"]) == 1
        assert rule["resourceNames"], "every proxy rule is narrowed to named objects"
        assert set(rule["verbs"]) == READ


def test_proxy_config_names() -> None:
    rules = rules_of(render(), "Role", "-proxy")[NAMESPACE]
    names = {r["resources"][0]: r["resourceNames"] for r in rules}
    shards = [shard_name("lockgate-config", s) for s in range(KEY_SHARDS)]  # every key shard the operator writes
    assert names["configmaps"] == ["lockgate-config"] + [f"lockgate-config-{i}" for i in range(1, 9)] + shards
    assert names["secrets"] == ["lockgate-credentials"]
    full = {r["resources"][0]: r["resourceNames"] for r in rules_of(render([FULL]), "Role", "-proxy")[NAMESPACE]}
    assert full["configmaps"] == ["gw-config", "gw-config-1", "gw-config-2", "gw-config-3",
                                  *(shard_name("gw-config", s) for s in range(KEY_SHARDS)), "gw-config-extra"]
    assert full["secrets"] == ["gw-credentials"]


def test_operator_roles_per_namespace() -> None:
    objs = render([FULL])
    by_ns = rules_of(objs, "Role", "-operator")
    assert sorted(by_ns) == sorted(["ai-gateway", "team-b", NAMESPACE])
    for ns in ("ai-gateway", "team-b"):
        rules = by_ns[ns]
        assert verbs_for(rules, "lockgate.io", "routes") == READ
        assert verbs_for(rules, "lockgate.io", "routes/status") == {"get", "patch"}
        assert verbs_for(rules, "lockgate.io", "apikeys/finalizers") == set()  # key Secrets set no blockOwnerDeletion
        assert verbs_for(rules, "kopf.dev", "kopfpeerings") == READ | {"patch"}
        assert verbs_for(rules, "", "configmaps") == set(), "config is published only in the release namespace"
        assert verbs_for(rules, "", "secrets") == READ | {"create", "patch"}, "keys are patched, never replaced"
        assert verbs_for(rules, "discovery.k8s.io", "endpointslices") == READ
        assert verbs_for(rules, "events.k8s.io", "events") == {"create"}
        assert verbs_for(rules, "coordination.k8s.io", "leases") == {"get", "create", "update"}  # extraRules
    home = by_ns[NAMESPACE]
    assert verbs_for(home, "", "configmaps") == {"list", "create", "get", "update", "delete"}
    (delete,) = [r for r in home if "delete" in r["verbs"]]
    parts = ["gw-config-1", "gw-config-2", "gw-config-3", *(shard_name("gw-config", s) for s in range(KEY_SHARDS))]
    assert delete["verbs"] == ["delete"] and delete["resourceNames"] == parts
    (replace,) = [r for r in home if "configmaps" in r["resources"] and "update" in r["verbs"]]
    assert replace["resourceNames"] == ["gw-config", *parts]
    # Not watched here: the credentials and generated Secrets, by name (and create, which takes no name).
    assert verbs_for(home, "", "secrets") == {"create", "get", "update", "patch"}
    for rule in [r for r in home if "secrets" in r["resources"]]:
        names = set(rule.get("resourceNames") or ())
        assert rule["verbs"] == ["create"] or names == {"gw-credentials"} or (
            names and "gw-credentials" not in names and set(rule["verbs"]) == {"get", "patch"}), rule
    assert verbs_for(home, "lockgate.io", "routes") == set(), "the release namespace is not watched here"
    for binding in of_kind(objs, "RoleBinding"):
        if binding["metadata"]["name"].endswith("-operator"):
            assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                          "name": binding["metadata"]["name"]}
            assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "lg-lockgate-operator",
                                            "namespace": NAMESPACE}]
    # Only the opt-in observer ClusterRole, read-only.
    (observe,) = rules_of(objs, "ClusterRole", "-observe").values()
    assert {v for r in observe for v in r["verbs"]} == {"list", "watch"}


def test_operator_never_writes_its_own_resources(objs: list[Obj]) -> None:
    for role in [o for o in objs if o["kind"] in RULE_KINDS]:
        for rule in role["rules"]:
            if "lockgate.io" in rule["apiGroups"]:
                main = [r for r in rule["resources"] if "/" not in r]
                assert not main or set(rule["verbs"]) <= READ


def test_namespaced_operator_has_no_cluster_role() -> None:
    assert not of_kind(render(), "ClusterRole") and not of_kind(render(), "ClusterRoleBinding")


def test_all_namespaces_uses_a_cluster_role() -> None:
    objs = render(sets=["operator.allNamespaces=true"])
    (cluster,) = rules_of(objs, "ClusterRole", "-operator").values()
    assert verbs_for(cluster, "lockgate.io", "apikeys") == READ
    assert verbs_for(cluster, "kopf.dev", "clusterkopfpeerings") == READ | {"patch"}
    assert verbs_for(cluster, "kopf.dev", "kopfpeerings") == set()
    assert verbs_for(cluster, "", "configmaps") == set(), "ConfigMaps are written in one namespace only"
    binding = one(objs, "ClusterRoleBinding", "-operator")
    assert binding["subjects"][0]["namespace"] == NAMESPACE
    home = rules_of(objs, "Role", "-operator")
    assert list(home) == [NAMESPACE] and verbs_for(home[NAMESPACE], "", "configmaps") >= {"create", "update"}


def test_only_the_credentials_secret_is_ever_replaced(objs: list[Obj]) -> None:
    for role in [o for o in objs if o["kind"] in RULE_KINDS]:
        for rule in role["rules"]:
            if "secrets" in rule["resources"] and {"update", "delete"} & set(rule["verbs"]):
                assert rule.get("resourceNames"), f"{role['metadata']['name']}: {rule}"
