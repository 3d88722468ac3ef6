"""The Helm chart on a real node: `helm install` with the default values but
the image (the one built from the project's Dockerfile) and the quota store,
then the operator and proxies run as pods, with their probes, their mounted
ServiceAccount tokens and the chart's RBAC, and traffic goes through the
proxy Service (kube-proxy).

The tests share one release and run in file order: the later ones restart,
upgrade and delete its pods.
"""

from __future__ import annotations

import base64
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.lockgate_env import Upstreams, wait_for
from tests.kube.node import Node
from tests.kube.nodeconf import HOST_IP
from tests.node.pods import apply, get, pods, wait_gone, wait_ready
from tests.upstreams import Action, FakeUpstream

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "lockgate"
NS = "lockgate"
RELEASE = "lockgate"
OPERATOR = "app.kubernetes.io/component=operator"
PROXY = "app.kubernetes.io/component=proxy"
ANSWER = "hello from the node"


@dataclass
class Release:
    node: Node
    home: Path
    upstreams: Upstreams = field(default_factory=Upstreams)
    upstream: FakeUpstream | None = None

    def helm(self, *args: str, timeout: float = 300) -> str:
        cp = self.node.control_plane
        assert cp.binaries.helm is not None
        env = {**cp.env, **{f"HELM_{k}_HOME": str(self.home / k.lower()) for k in ("CACHE", "CONFIG", "DATA")}}
        proc = subprocess.run([str(cp.binaries.helm), *args, "--namespace", NS], env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)
        assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def kubectl(self, *args: str, check: bool = True) -> str:
        return self.node.kubectl(*args, "-n", NS, check=check).stdout

    def obj(self, kind: str, name: str) -> dict[str, Any]:
        found = get(self.node, kind, name, NS)
        assert found is not None, f"{kind}/{name} does not exist"
        return found

    def condition(self, kind: str, name: str, type_: str) -> dict[str, Any] | None:
        conditions = (get(self.node, kind, name, NS) or {}).get("status", {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == type_), None)

    def secret_value(self, name: str, key: str = "api-key") -> str | None:
        data = (get(self.node, "secret", name, NS) or {}).get("data") or {}
        return base64.b64decode(data[key]).decode() if key in data else None

    def service_url(self) -> str:
        svc = self.obj("service", "lockgate-proxy")
        return f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}/v1"

    def client(self, base_url: str | None = None, key: str = "") -> openai.OpenAI:
        # A new client (so a new connection) per use: these tests are about
        # where each request lands, not about a client's keep-alive pool.
        return openai.OpenAI(base_url=base_url or self.service_url(), api_key=key, max_retries=0, timeout=20)

    def chat(self, key: str, base_url: str | None = None) -> str:
        reply = self.client(base_url, key).chat.completions.create(
            model="m1", messages=[{"role": "user", "content": "hi"}])
        return reply.choices[0].message.content or ""


@pytest.fixture(scope="module")
def release(node: Node, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    rel = Release(node, tmp_path_factory.mktemp("helm"))
    image = node.images.lockgate
    # The default quota store is the bundled Redis, which the proxies reach by
    # its Service name and which keeps its data on a PersistentVolumeClaim: the
    # node has neither cluster DNS nor a volume provisioner, so the quotas are
    # counted in memory here (per pod, on an emptyDir).
    rel.helm("install", RELEASE, str(CHART), "--create-namespace",
             "--set", f"image.repository={image.repository}", "--set", f"image.tag={image.tag}",
             "--set", "proxy.quota.store=memory", "--set", "proxy.quota.memory.approximate=true",
             "--set", "proxy.quota.memory.persistence.enabled=false")
    try:
        yield rel
    finally:
        rel.upstreams.close()
        print(rel.kubectl("get", "pods,events", "-o", "wide", check=False))
        for pod in pods(node, NS, "app.kubernetes.io/instance=lockgate"):
            name = pod["metadata"]["name"]
            print(f"----- {name} -----\n" + rel.kubectl("logs", name, "--tail=40", check=False))


@pytest.fixture(scope="module")
def key(release: Release) -> str:
    """A provider on an upstream the pods can reach, a route, and an ApiKey
    whose key the operator generates."""
    release.upstream = release.upstreams.start(ANSWER, bind=HOST_IP)
    meta = {"namespace": NS}
    apply(release.node,
          {"apiVersion": "lockgate.io/v1alpha1", "kind": "ModelProvider", "metadata": {"name": "up", **meta},
           "spec": {"type": "openai-compatible", "endpoint": release.upstream.url, "models": [{"name": "m1"}]}},
          {"apiVersion": "lockgate.io/v1alpha1", "kind": "Route", "metadata": {"name": "api", **meta},
           "spec": {"type": "openai", "hosts": ["*"]}},
          {"apiVersion": "lockgate.io/v1alpha1", "kind": "ApiKey", "metadata": {"name": "team", **meta},
           "spec": {"consumer": "team", "secretName": "team-key"}})
    return wait_for(lambda: release.secret_value("team-key"), 60, "the generated key")


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


def test_a_chat_request_through_the_proxy_service(release: Release, key: str) -> None:
    answer = wait_for(lambda: _answer(release, key), 90, "an answer through the proxy Service", interval=0.5)
    assert answer == ANSWER
    assert release.upstream is not None and release.upstream.received  # it went all the way
    for kind, name in (("modelprovider", "up"), ("route", "api"), ("apikey", "team")):
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
                         "metadata": {"name": "after", "namespace": NS},
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
    for kind, name in (("modelprovider", "up"), ("route", "api"), ("apikey", "team")):
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


def test_a_deleted_proxy_pod_finishes_its_stream(release: Release, key: str) -> None:
    assert release.upstream is not None
    (pod, _) = wait_ready(release.node, NS, PROXY, 2)
    name = pod["metadata"]["name"]
    # Twenty pieces, 0.4 s apart: an 8 s stream, within the chart's preStop
    # pause plus the proxy's drain time.
    pieces = [f"p{i} " for i in range(20)]
    release.upstream.then(Action(chunks=pieces, chunk_delay=0.4))
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
