"""The operator and proxies as processes on a real kube-apiserver: apply ->
published -> served, status conditions, keys, discovery, restarts."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.request

import yaml

from tests.e2e.lockgate_env import (  # noqa: F401  (fixtures)
    REPO, Lockgate, Proxy, apikey, backend, crds, endpoint_slice, lockgate, route, wait_for,
)
from tests.kube.controlplane import free_port


def serving(lockgate: Lockgate, text: str = "served by a", operator_args: tuple[str, ...] = ()) -> tuple[Proxy, str]:
    """Operator, one proxy, one backend, a Route and an ApiKey; the working key."""
    upstream = lockgate.upstreams.start(text)
    lockgate.start_operator(*operator_args)
    proxy = lockgate.start_proxy()
    lockgate.apply_objects([*backend("a", upstream.port), route(), apikey("team")])
    key = wait_for(lambda: lockgate.secret_value("team-key"), 15, "the generated key")
    lockgate.works(proxy, key, text)
    return proxy, key


def test_apply_makes_requests_through_the_proxy_succeed(lockgate: Lockgate) -> None:
    liveness = free_port()
    proxy, key = serving(lockgate, operator_args=("--liveness", f"http://127.0.0.1:{liveness}/healthz"))
    assert key.startswith("lg-") and len(key) >= 3 + 43
    with urllib.request.urlopen(f"http://127.0.0.1:{liveness}/healthz", timeout=2) as health:
        assert health.status == 200
        assert json.loads(health.read())["reconciler"]["configHash"] == lockgate.published_hash()

    for kind, name in (("modelprovider", "a"), ("route", "api"), ("apikey", "team")):
        for type_ in ("Accepted", "ResolvedRefs", "Ready", "Programmed"):
            c = wait_for(lambda: lockgate.condition_is(kind, name, type_, "True"), 15, f"{kind}/{name} {type_}")
            assert c["observedGeneration"] == lockgate.obj(kind, name)["metadata"]["generation"]
    status = lockgate.obj("apikey", "team")["status"]
    assert status["secretName"] == "team-key" and len(status["keyHashPrefix"]) == 12
    assert lockgate.obj("modelprovider", "a")["status"]["readyEndpoints"] == 1
    secret = lockgate.get("secret", "team-key")
    assert secret["metadata"]["ownerReferences"][0]["kind"] == "ApiKey"
    assert proxy.loaded_hash() == lockgate.published_hash()
    for process in lockgate.processes:  # keys live in their Secret only
        assert key not in process.output()
    row = lockgate.kubectl("get", "apikeys", "team", "--no-headers").stdout.split()
    assert row[:3] == ["team", "team", "team-key"] and row[-2] == "True"  # NAME CONSUMER SECRET ... READY AGE


def test_crds_print_columns_and_cel_refuses_invalid_objects(lockgate: Lockgate) -> None:
    lockgate.apply_objects([apikey("cols", expiresAt="2030-01-01T00:00:00Z")])
    header = lockgate.kubectl("get", "apikeys").stdout.splitlines()[0].split()
    assert header == ["NAME", "CONSUMER", "SECRET", "EXPIRES", "READY", "AGE"]
    assert "TOKENS" in lockgate.kubectl("get", "apikeys", "-o", "wide").stdout.splitlines()[0]

    both = apikey("both", existingSecret={"name": "s", "key": "k"})
    refused = lockgate.apply(json.dumps(both), check=False)
    assert refused.returncode != 0 and "set exactly one of secretName and existingSecret" in refused.stderr
    neither = {"apiVersion": "lockgate.io/v1alpha1", "kind": "ModelProvider", "metadata": {"name": "p"},
               "spec": {"type": "openai", "models": [{"name": "m"}]}}
    refused = lockgate.apply(json.dumps(neither), check=False)
    assert refused.returncode != 0 and "set exactly one of endpoint and service" in refused.stderr
    template = route("t", type="chatTemplate")
    refused = lockgate.apply(json.dumps(template), check=False)
    assert refused.returncode != 0 and "a chatTemplate route needs path and chatTemplate" in refused.stderr
    assert lockgate.get("apikey", "both") is None and lockgate.get("modelprovider", "p") is None


def test_programmed_turns_true_only_after_every_proxy_loaded_the_config(lockgate: Lockgate) -> None:
    upstream = lockgate.upstreams.start("served")
    lockgate.start_operator()
    first = lockgate.start_proxy("proxy-1")
    ports = (free_port(), free_port())
    lockgate.register_proxy("proxy-2", ports[1])  # a second replica, known but not running yet
    lockgate.apply_objects([*backend("a", upstream.port), route(), apikey("team")])

    wait_for(lambda: lockgate.condition_is("route", "api", "Accepted", "True"), 15, "the route accepted")
    published = wait_for(lambda: lockgate.published_hash() if first.loaded_hash() == lockgate.published_hash()
                         and lockgate.condition_is("route", "api", "Accepted", "True") else None, 15,
                         "the first replica to load the configuration")
    def one_of_two() -> dict | None:
        c = lockgate.condition_is("route", "api", "Programmed", "False")
        return c if c and "1 of 2" in c["message"] else None

    assert wait_for(one_of_two, 15, "Programmed=False with one replica of two")["reason"] == "Pending"

    second = lockgate.start_proxy("proxy-2", ports=ports, register=False)
    wait_for(lambda: lockgate.condition_is("route", "api", "Programmed", "True"), 10, "Programmed=True")
    assert first.loaded_hash() == second.loaded_hash() == published
    events = lockgate.kubectl("get", "events", "--field-selector", "involvedObject.name=api", "-o", "json").stdout
    assert any(e["reason"] == "Programmed" for e in json.loads(events)["items"])

    # a replica goes away, then the key rotates: only the ApiKey waits for the replicas again
    wait_for(lambda: lockgate.condition_is("apikey", "team", "Programmed", "True"), 10, "the ApiKey Programmed")
    second.process.kill()
    lockgate.kubectl("annotate", "apikey", "team", "lockgate.io/rotate=now")
    rotated = wait_for(lambda: lockgate.condition_is("apikey", "team", "Programmed", "False"), 10, "the key Pending")
    assert rotated["reason"] == "Pending"
    assert lockgate.condition_is("route", "api", "Programmed", "True")  # its part did not change


def test_an_endpointslice_change_moves_traffic_within_2s(lockgate: Lockgate) -> None:
    proxy, key = serving(lockgate, "from a")
    b = lockgate.upstreams.start("from b")

    started = time.monotonic()
    lockgate.apply_objects([endpoint_slice("a-1", "a", "http", b.port)])
    lockgate.works(proxy, key, "from b", timeout=2.0)
    assert time.monotonic() - started < 2.0


def test_new_apikey_works_and_deleted_apikey_gets_401_within_2s(lockgate: Lockgate) -> None:
    proxy, key = serving(lockgate)

    lockgate.apply_objects([apikey("newcomer")])
    new_key = wait_for(lambda: lockgate.secret_value("newcomer-key"), 10, "the newcomer's key")
    assert new_key != key
    lockgate.works(proxy, new_key, timeout=10)

    started = time.monotonic()
    lockgate.kubectl("delete", "apikey", "team", "--wait=false")
    wait_for(lambda: lockgate.status_of(proxy, key) == 401, 2.0, "401 for the deleted key")
    assert time.monotonic() - started < 2.0
    assert isinstance(lockgate.status_of(proxy, new_key), str)


def test_rotation_keeps_the_previous_key_for_its_grace(lockgate: Lockgate) -> None:
    proxy, old = serving(lockgate)
    lockgate.kubectl("annotate", "apikey", "team", "lockgate.io/rotate=first")

    new = wait_for(lambda: (lambda k: k if k and k != old else None)(lockgate.secret_value("team-key")), 10,
                   "the rotated key")
    assert lockgate.secret_value("team-key", "previous-api-key") == old
    lockgate.works(proxy, new, timeout=10)
    assert isinstance(lockgate.status_of(proxy, old), str)
    # the same annotation value never rotates twice
    lockgate.kubectl("annotate", "apikey", "team", "--overwrite", "unrelated=1")
    time.sleep(1.0)  # no event to await: the absence of a rotation is the point
    assert lockgate.secret_value("team-key") == new


def test_an_invalid_route_is_refused_with_a_reason_while_others_keep_working(lockgate: Lockgate) -> None:
    proxy, key = serving(lockgate)
    lockgate.apply_objects([route("broken", hosts=["broken.example"],
                                  aliases=[{"name": "x", "targets": [{"model": "no-such-model"}]}])])

    refused = wait_for(lambda: lockgate.condition_is("route", "broken", "Accepted", "False"), 10, "Accepted=False")
    assert refused["reason"] == "UnknownModel" and "no-such-model" in refused["message"]
    assert lockgate.condition_is("route", "broken", "Programmed", "False")["reason"] == "NotAccepted"
    assert lockgate.condition_is("route", "api", "Accepted", "True")
    assert lockgate.works(proxy, key) == "served by a"
    events = lockgate.kubectl("get", "events", "--field-selector", "involvedObject.name=broken", "-o", "json").stdout
    warnings = [e for e in json.loads(events)["items"] if e["type"] == "Warning"]
    assert any(e["reason"] == "UnknownModel" for e in warnings)


def test_restarting_the_operator_changes_nothing_served(lockgate: Lockgate) -> None:
    proxy, key = serving(lockgate)
    wait_for(lambda: lockgate.condition_is("apikey", "team", "Programmed", "True"), 10, "Programmed")
    before = {kind: lockgate.obj(kind, name)["metadata"]["resourceVersion"]
              for kind, name in (("configmap", "lockgate-config"), ("secret", "lockgate-credentials"))}
    served = proxy.loaded_hash()

    failures: list[object] = []
    answered = 0
    stop = threading.Event()

    def traffic() -> None:
        nonlocal answered
        while not stop.is_set():
            answer = lockgate.status_of(proxy, key)
            if isinstance(answer, str):
                answered += 1
            else:
                failures.append(answer)

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        lockgate.processes[0].kill()
        second = lockgate.start_operator()
        wait_for(lambda: "rendered" in second.output(), 30, "the new operator's first render")
        wait_for(lambda: lockgate.condition_is("apikey", "team", "Programmed", "True"), 10, "still Programmed")
    finally:
        stop.set()
        worker.join(10)

    assert "configuration " + served[:12] + " unchanged" in second.output()
    after = {kind: lockgate.obj(kind, name)["metadata"]["resourceVersion"]
             for kind, name in (("configmap", "lockgate-config"), ("secret", "lockgate-credentials"))}
    assert after == before and proxy.loaded_hash() == served
    assert failures == [] and answered > 0


def test_peering_keeps_one_operator_active_and_fails_over(lockgate: Lockgate) -> None:
    lockgate.kube.install_crds([REPO / "charts" / "lockgate" / "crds" / "kopf.dev_peerings.yaml"])
    lockgate.apply_objects([{"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "lockgate"}}])
    upstream = lockgate.upstreams.start("peered")
    peering = ("--peering", "lockgate", "--peering-lifetime", "3")
    active = lockgate.start_operator(*peering, "--priority", "200", standalone=False)
    # (a lower priority replica started alone would rightly be active until this one shows up)
    wait_for(lambda: "now active" in active.output(), 20, "the first operator to be active")
    standby = lockgate.start_operator(*peering, "--priority", "100", standalone=False)
    proxy = lockgate.start_proxy()
    lockgate.apply_objects([*backend("a", upstream.port), route(), apikey("team")])
    key = wait_for(lambda: lockgate.secret_value("team-key"), 20, "the generated key")
    lockgate.works(proxy, key, "peered")
    served = proxy.loaded_hash()
    assert "rendered" in active.output() and "rendered" not in standby.output()

    active.kill()
    lockgate.apply_objects([apikey("after-failover")])
    later = wait_for(lambda: lockgate.secret_value("after-failover-key"), 30, "the standby to take over")
    lockgate.works(proxy, later, timeout=10)
    assert "configuration " + served[:12] in standby.output()  # it first re-rendered what was served


def test_usage_is_mirrored_into_apikey_status_with_expiry(lockgate: Lockgate) -> None:
    upstream = lockgate.upstreams.start("counted")
    lockgate.start_operator("--usage-interval", "0.5")
    proxy = lockgate.start_proxy()
    lockgate.apply_objects([*backend("a", upstream.port), route(), apikey("team", limits={"monthlyTokens": 100000}),
                            apikey("old", expiresAt="2024-01-01T00:00:00Z")])
    key = wait_for(lambda: lockgate.secret_value("team-key"), 15, "the generated key")
    lockgate.works(proxy, key)
    lockgate.chat(proxy, key)

    def usage() -> dict | None:
        found = ((lockgate.get("apikey", "team") or {}).get("status") or {}).get("usage")
        return found if found and found["requests"] >= 2 else None

    mirrored = wait_for(usage, 15, "usage in the ApiKey status")
    assert mirrored["tokens"] == 2 * 18 and mirrored["remaining"] == 100000 - 36  # the upstream reports 11 + 7
    assert lockgate.condition_is("apikey", "team", "Exhausted", "False")["reason"] == "WithinBudget"
    assert lockgate.condition_is("apikey", "team", "Expired", "False")
    expired = wait_for(lambda: lockgate.condition_is("apikey", "old", "Expired", "True"), 10, "Expired=True")
    assert "2024-01-01" in expired["message"]
    old_key = wait_for(lambda: lockgate.secret_value("old-key"), 10, "the expired key's Secret")
    assert lockgate.status_of(proxy, old_key) == 401


def test_one_operator_serves_objects_of_several_namespaces(lockgate: Lockgate) -> None:
    other = f"{lockgate.namespace[:50]}-b"
    lockgate.kube.kubectl("create", "namespace", other)
    upstream = lockgate.upstreams.start("from the other namespace")
    lockgate.start_operator("--namespace", other)
    proxy = lockgate.start_proxy()
    lockgate.kube.kubectl("apply", "-n", other, "-f", "-",
                          input=yaml.safe_dump_all([*backend("a", upstream.port), route(), apikey("team")]))

    def key() -> str | None:
        out = lockgate.kube.kubectl("get", "secret", "team-key", "-n", other, "-o", "jsonpath={.data.api-key}",
                                    check=False)
        return base64.b64decode(out.stdout).decode() if out.returncode == 0 and out.stdout else None

    assert lockgate.works(proxy, wait_for(key, 15, "the key in the other namespace")) == "from the other namespace"
    assert lockgate.get("configmap", "lockgate-config") is not None  # published in the publish namespace
