"""Programmed: replicas from EndpointSlices, rollout counting, the condition."""

from __future__ import annotations

from lockgate.api.ir import ApiKeyHash, ConsumerKey, GatewayConfig, Route
from lockgate.operator.programmed import Rollout, fingerprints, programmed_condition, replica_urls, rollout


def slice_(port: int | None, *addresses: tuple[str, bool | None], port_name: str = "admin") -> dict:
    endpoints = [{"addresses": [a], **({"conditions": {"ready": r}} if r is not None else {})} for a, r in addresses]
    return {"ports": [{"name": port_name, "port": port}] if port else [], "endpoints": endpoints}


def test_replicas_are_ready_endpoints_with_each_slices_admin_port() -> None:
    slices = [slice_(9001, ("127.0.0.1", True)), slice_(9002, ("127.0.0.1", None), ("10.0.0.9", False)),
              slice_(None, ("fd00::1", True)), slice_(8080, ("10.1.1.1", True), port_name="http")]
    assert replica_urls(slices, 9090) == [
        "http://10.1.1.1:9090", "http://127.0.0.1:9001", "http://127.0.0.1:9002", "http://[fd00::1]:9090"]


def test_rollout_counts_replicas_reporting_this_config_and_credentials() -> None:
    reports = {"a": {"hash": "h1", "credentialsHash": "c1"}, "b": {"hash": "h0", "credentialsHash": "c1"},
               "c": None, "d": {"hash": "h1", "credentialsHash": "c0"}}
    state = rollout("h1", "c1", reports)
    assert (state.replicas, state.loaded, state.complete) == (4, 1, False)
    assert rollout("h1", "c1", {"a": reports["a"]}).complete
    assert not rollout("h1", "c1", {}).complete


def test_programmed_condition() -> None:
    done, pending, none = Rollout("h" * 64, "c", 2, 2), Rollout("h" * 64, "c", 2, 1), Rollout("h" * 64, "c", 0, 0)
    assert programmed_condition(done, True, 3, None).status == "True"
    assert programmed_condition(done, False, 3, None).reason == "NotAccepted"
    c = programmed_condition(pending, True, 3, None)
    assert (c.status, c.reason) == ("False", "Pending") and "1 of 2" in c.message
    assert programmed_condition(none, True, 3, None).reason == "NoReplicas"
    # already programmed at this generation, own part unchanged: another object's rollout does not flip it
    previous = {"type": "Programmed", "status": "True", "reason": "Programmed", "message": "x", "observedGeneration": 3}
    assert programmed_condition(pending, True, 3, previous, unchanged=True).status == "True"
    assert programmed_condition(pending, True, 3, previous, unchanged=False).status == "False"  # e.g. a rotated key
    assert programmed_condition(pending, True, 4, previous, unchanged=True).status == "False"
    # ... nor does a later configuration once every replica loaded it: the condition is kept as it is
    assert programmed_condition(Rollout("n" * 64, "c", 2, 2), True, 3, previous, unchanged=True).message == "x"


def test_fingerprints_follow_each_objects_part_of_the_config() -> None:
    key = ConsumerKey(id="ns/k", consumer="c", hashes=(ApiKeyHash(sha256="a" * 64),))
    route = Route(id="ns/r", type="openai", hosts=("*",))
    before = fingerprints(GatewayConfig(keys=(key,), routes=(route,)))
    rotated = key.model_copy(update={"hashes": (ApiKeyHash(sha256="b" * 64),)})
    after = fingerprints(GatewayConfig(keys=(rotated,), routes=(route,)))
    assert set(before) == {("ApiKey", "ns/k"), ("Route", "ns/r")}
    assert before[("Route", "ns/r")] == after[("Route", "ns/r")] and before[("ApiKey", "ns/k")] != after[("ApiKey", "ns/k")]
    memo: dict[tuple[str, str], tuple[object, str]] = {}
    assert fingerprints(GatewayConfig(keys=(key,), routes=(route,)), memo) == before
    assert fingerprints(GatewayConfig(keys=(rotated,)), memo) == {("ApiKey", "ns/k"): after[("ApiKey", "ns/k")]}
    assert set(memo) == {("ApiKey", "ns/k")}  # the route that went is forgotten


def test_without_discovery_publishing_is_programmed() -> None:
    assert Rollout("h", "c", 0, 0, discovery=False).complete
    assert programmed_condition(Rollout("h", "c", 0, 0, discovery=False), True, 1, None).status == "True"
