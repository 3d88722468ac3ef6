"""The Helm chart on a real node (installed by tests/node/release.py with the
default values but the watched namespace and the images): the operator, the
proxies and the bundled Redis run as pods, with their probes, their mounted
ServiceAccount tokens, the chart's RBAC and Redis' PersistentVolumeClaim, and
traffic goes through the proxy Service (kube-proxy).

The tests share the session's release and run in file order: the later ones
restart, upgrade and delete its pods.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.lockgate_env import wait_for
from tests.kube.nodeconf import HOST_IP
from tests.node.pods import apply, get, pods, wait_gone, wait_ready
from tests.node.release import APPS, CHART, NS, OPERATOR, PROXY, REDIS, RELEASE, Release
from tests.upstreams import Action, FakeUpstream

ANSWER = "hello from the node"


@pytest.fixture(scope="module")
def upstream(quickstart: Release) -> FakeUpstream:
    """An upstream on the host's end of the link, which pods reach."""
    return quickstart.upstreams.start(ANSWER, bind=HOST_IP)


@pytest.fixture(scope="module")
def key(quickstart: Release, upstream: FakeUpstream) -> str:
    """A provider on that upstream and an ApiKey whose key the operator
    generates; the quickstart's Route serves them."""
    meta = {"namespace": APPS}
    apply(quickstart.node,
          {"apiVersion": "lockgate.io/v1alpha1", "kind": "ModelProvider", "metadata": {"name": "up", **meta},
           "spec": {"type": "openai-compatible", "endpoint": upstream.url, "models": [{"name": "m1"}]}},
          {"apiVersion": "lockgate.io/v1alpha1", "kind": "ApiKey", "metadata": {"name": "team", **meta},
           "spec": {"consumer": "team", "secretName": "team-key"}})
    return wait_for(lambda: quickstart.secret_value("team-key"), 60, "the generated key")


def exec_in(release: Release, pod: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return release.node.kubectl("exec", "-n", NS, pod, "--", *argv, check=False)


def test_the_charts_pods_run_and_pass_their_probes(release: Release) -> None:
    operators = wait_ready(release.node, NS, OPERATOR, 1)
    proxies = wait_ready(release.node, NS, PROXY, 2)  # the default replicas
    for pod in [*operators, *proxies]:
        name, spec = pod["metadata"]["name"], pod["spec"]
        # Ready means the proxy's readiness probe passed on its admin port.
        assert all(c["ready"] and c["restartCount"] == 0 for c in pod["status"]["containerStatuses"]), pod["status"]
        assert spec["serviceAccountName"] in ("lockgate-operator", "lockgate-proxy")
        # The token the pod talks to the API server with: mounted by the real admission plugin.
        mounts = [m["mountPath"] for c in spec["containers"] for m in c.get("volumeMounts", [])]
        assert "/var/run/secrets/kubernetes.io/serviceaccount" in mounts
        token = exec_in(release, name, "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token")
        assert token.returncode == 0 and token.stdout.count(".") == 2
        # The image as users run it: its non-root user, a read-only root.
        assert exec_in(release, name, "id", "-u").stdout.strip() == "10001"
        denied = exec_in(release, name, "touch", "/opt/lockgate/written")
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    # The operator answers Kopf's liveness probe, which kubelet runs.
    assert operators[0]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_the_bundled_redis_runs_on_its_claimed_volume(release: Release) -> None:
    (redis,) = wait_ready(release.node, NS, REDIS, 1)
    assert all(c["ready"] and c["restartCount"] == 0 for c in redis["status"]["containerStatuses"])
    # Its claim bound one of the node's volumes; the append-only file is written there.
    claim = release.obj("pvc", f"data-{redis['metadata']['name']}", NS)
    assert claim["status"]["phase"] == "Bound"
    volume = json.loads(release.node.kubectl("get", "pv", claim["spec"]["volumeName"], "-o", "json").stdout)
    folder = volume["spec"]["hostPath"]["path"]
    assert wait_for(lambda: list(Path(folder).glob("appendonlydir/*.aof")), 30, "the append-only file")
    # The proxies point at it by its Service name, which the cluster DNS resolves.
    env = {e["name"]: e.get("value", "") for c in pods(release.node, NS, PROXY)[0]["spec"]["containers"]
           for e in c.get("env", [])}
    assert f"@{RELEASE}-redis.{NS}.svc:6379/0" in env["LOCKGATE_QUOTA_STORE_URL"]


def test_a_chat_request_through_the_proxy_service(release: Release, key: str, upstream: FakeUpstream) -> None:
    answer = wait_for(lambda: _answer(release, key), 90, "an answer through the proxy Service", interval=0.5)
    assert answer == ANSWER
    assert upstream.received  # it went all the way
    for kind, name in (("modelprovider", "up"), ("route", "openai"), ("apikey", "team")):
        for type_ in ("Ready", "Programmed"):
            # Programmed: the operator asked every proxy pod on its admin port, via the admin Service.
            wait_for(lambda: (release.condition(kind, name, type_) or {}).get("status") == "True",
                     60, f"{kind}/{name} {type_}=True")
    usage = wait_for(lambda: (release.obj("apikey", "team").get("status") or {}).get("usage")
                     if ((release.obj("apikey", "team").get("status") or {}).get("usage") or {}).get("tokens")
                     else None, 90, "the key's usage in its status")
    assert usage["tokens"] >= 18 and usage["requests"] >= 1  # 11 + 7 tokens per answer upstream


def _answer(release: Release, key: str) -> str | None:
    try:
        return release.chat(key)
    except (openai.APIStatusError, openai.APIConnectionError):
        return None


def test_a_restarted_operator_picks_up_where_it_was(release: Release, key: str) -> None:
    before = _state(release)
    (old,) = wait_ready(release.node, NS, OPERATOR, 1)
    release.kubectl("delete", "pod", old["metadata"]["name"], "--wait=true")
    (new,) = wait_ready(release.node, NS, OPERATOR, 1)
    assert new["metadata"]["name"] != old["metadata"]["name"]
    # The new operator is at work: it programs a key made after its start ...
    apply(release.node, {"apiVersion": "lockgate.io/v1alpha1", "kind": "ApiKey",
                         "metadata": {"name": "after", "namespace": APPS},
                         "spec": {"consumer": "after", "secretName": "after-key"}})
    after_key = wait_for(lambda: release.secret_value("after-key"), 60, "a key generated after the restart")
    wait_for(lambda: (release.condition("apikey", "after", "Programmed") or {}).get("status") == "True",
             60, "the new key Programmed")
    assert wait_for(lambda: _answer(release, after_key), 30, "the new key works", interval=0.5) == ANSWER
    # ... and what the old one made stands: no key generated twice, conditions kept.
    assert release.secret_value("team-key") == key
    after = _state(release)
    assert after["conditions"] == before["conditions"]
    assert after["key_secret_version"] == before["key_secret_version"]
    assert _answer(release, key) == ANSWER


def _state(release: Release) -> dict[str, Any]:
    conditions = {}
    for kind, name in (("modelprovider", "up"), ("route", "openai"), ("apikey", "team")):
        for c in release.obj(kind, name)["status"]["conditions"]:
            conditions[f"{kind}/{name}/{c['type']}"] = (c["status"], c.get("reason"), c.get("lastTransitionTime"))
    return {"conditions": conditions,
            "key_secret_version": release.obj("secret", "team-key")["metadata"]["resourceVersion"]}


def test_no_request_fails_during_a_rolling_upgrade(release: Release, key: str) -> None:
    wait_ready(release.node, NS, PROXY, 2)
    results: list[str | Exception] = []
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            try:
                results.append(release.chat(key))
            except Exception as e:  # every failure is recorded, whatever its kind
                results.append(e)

    senders = [threading.Thread(target=send) for _ in range(2)]
    for t in senders:
        t.start()
    try:
        wait_for(lambda: len(results) >= 4, 30, "traffic before the upgrade")
        old = {p["metadata"]["name"] for p in pods(release.node, NS, PROXY)}
        release.helm("upgrade", RELEASE, str(CHART), "--reuse-values",
                     "--set-string", f"proxy.podAnnotations.rollout={uuid.uuid4().hex[:8]}")
        release.kubectl("rollout", "status", "deployment/lockgate-proxy", "--timeout=300s")
        new = wait_ready(release.node, NS, PROXY, 2)
        wait_for(lambda: not (old & {p["metadata"]["name"] for p in pods(release.node, NS, PROXY)}),
                 120, "the old proxy pods gone")
        count = len(results)
        wait_for(lambda: len(results) >= count + 4, 30, "traffic after the upgrade")
    finally:
        stop.set()
        for t in senders:
            t.join(30)
    assert not old & {p["metadata"]["name"] for p in new}
    failures = [r for r in results if not isinstance(r, str) or r != ANSWER]
    assert not failures, f"{len(failures)} of {len(results)} requests failed: {failures[:5]}"
    assert len(results) >= 20


def test_a_deleted_proxy_pod_finishes_its_stream(release: Release, key: str, upstream: FakeUpstream) -> None:
    (pod, _) = wait_ready(release.node, NS, PROXY, 2)
    name = pod["metadata"]["name"]
    # Twenty pieces, 0.4 s apart: an 8 s stream, within the chart's preStop
    # pause plus the proxy's drain time.
    pieces = [f"p{i} " for i in range(20)]
    upstream.then(Action(chunks=pieces, chunk_delay=0.4))
    stream = release.client(f"http://{pod['status']['podIP']}:8080/v1", key).chat.completions.create(
        model="m1", messages=[{"role": "user", "content": "a long one"}], stream=True)
    received, finish, deleted_at = [], None, None
    for chunk in stream:
        if not chunk.choices:
            continue
        received.append(chunk.choices[0].delta.content or "")
        finish = chunk.choices[0].finish_reason or finish
        if deleted_at is None and len(received) == 3:
            release.kubectl("delete", "pod", name, "--wait=false")
            deleted_at = time.monotonic()
    served_after_delete = time.monotonic() - (deleted_at or 0)
    assert deleted_at is not None
    assert "".join(received) == "".join(pieces) and finish == "stop"
    # The pod really was on its way out while most of the stream went on.
    assert served_after_delete > 4
    terminating = get(release.node, "pod", name, NS)
    assert terminating is None or terminating["metadata"].get("deletionTimestamp")
    wait_gone(release.node, "pod", name, NS, timeout=120)
    wait_ready(release.node, NS, PROXY, 2)  # the Deployment replaced it
