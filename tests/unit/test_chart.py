"""The Helm chart: lint, render, and check what it renders."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from tests.unit.chart_support import CHART, NAMESPACE, REPO, Obj, of_kind, one, render, render_notes, run_helm, template_args

FULL = REPO / "tests" / "fixtures" / "chart-full-values.yaml"
LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by",
          "app.kubernetes.io/part-of", "app.kubernetes.io/version", "helm.sh/chart")
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering", "CustomResourceDefinition"}


@pytest.fixture(scope="module")
def default_objs() -> list[Obj]:
    return render()


@pytest.fixture(scope="module")
def full_objs() -> list[Obj]:
    return render([FULL])


def containers(deploy: Obj) -> list[dict[str, Any]]:
    spec = deploy["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def container_port(container: dict[str, Any], name: str) -> int:
    return next(int(p["containerPort"]) for p in container["ports"] if p["name"] == name)


@pytest.mark.parametrize("values", [[], [FULL]], ids=["default", "full"])
def test_lint_strict(values: list[Path]) -> None:
    args = ["lint", "--strict", str(CHART)]
    for path in values:
        args += ["--values", str(path)]
    proc = run_helm(args)
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("which", ["default_objs", "full_objs"])
def test_every_object_is_labelled_and_placed(which: str, request: pytest.FixtureRequest) -> None:
    objs: list[Obj] = request.getfixturevalue(which)
    assert len(objs) >= 10
    for obj in objs:
        meta = obj["metadata"]
        missing = [k for k in LABELS if k not in meta.get("labels", {})]
        assert not missing, f"{obj['kind']}/{meta['name']} lacks labels {missing}"
        if obj["kind"] not in CLUSTER_SCOPED:
            assert meta.get("namespace"), f"{obj['kind']}/{meta['name']} has no namespace"


@pytest.mark.parametrize("which", ["default_objs", "full_objs"])
def test_pods_are_locked_down(which: str, request: pytest.FixtureRequest) -> None:
    objs = request.getfixturevalue(which)
    deploys = of_kind(objs, "Deployment") + of_kind(objs, "StatefulSet")
    expected = {"operator", "proxy", "redis"} if which == "default_objs" else {"operator", "proxy"}
    assert {d["metadata"]["name"].rsplit("-", 1)[-1] for d in deploys} == expected
    for deploy in deploys:
        pod = deploy["spec"]["template"]["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert pod["runAsUser"] > 0 and pod["runAsGroup"] > 0
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in containers(deploy):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert sc.get("privileged", False) is False
            # A read-only root needs a writable /tmp.
            assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])


def test_pod_user_matches_the_image_user(default_objs: list[Obj]) -> None:
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    user_lines = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    uid, _, gid = user_lines[-1].partition(":")
    pod = one(default_objs, "Deployment", "-proxy")["spec"]["template"]["spec"]["securityContext"]
    assert (str(pod["runAsUser"]), str(pod["runAsGroup"])) == (uid, gid)


def test_operator_probe_and_args(default_objs: list[Obj]) -> None:
    (c,) = containers(one(default_objs, "Deployment", "-operator"))
    probe = c["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz" and container_port(c, probe["port"]) == 8081
    assert "readinessProbe" not in c
    args = c["args"]
    assert args[0] == "operator"
    assert f"--namespace={NAMESPACE}" in args and "--all-namespaces" not in args
    assert "--liveness=http://0.0.0.0:8081/healthz" in args
    assert "--config-map=lockgate-config" in args
    assert "--credentials-secret=lockgate-credentials" in args
    assert "--proxy-service=lg-lockgate-proxy-admin" in args and "--proxy-admin-port=9090" in args
    assert "--peering=lockgate" in args
    assert "--no-cluster-scan" in args  # no cluster-scope reads granted by default
    assert {"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in c["env"]
    assert one(default_objs, "Deployment", "-operator")["spec"]["replicas"] == 1


def test_operator_watches_listed_namespaces_or_all(full_objs: list[Obj]) -> None:
    (c,) = containers(one(full_objs, "Deployment", "-operator"))
    assert [a for a in c["args"] if a.startswith("--namespace")] == ["--namespace=ai-gateway", "--namespace=team-b"]
    assert "--no-cluster-scan" not in c["args"]  # observeCluster grants what Kopf's scanning reads
    (c,) = containers(one(render(sets=["operator.allNamespaces=true"]), "Deployment", "-operator"))
    assert "--all-namespaces" in c["args"]
    assert not [a for a in c["args"] if a.startswith("--namespace")]


def test_proxy_probes_ports_and_args(default_objs: list[Obj]) -> None:
    (c,) = containers(one(default_objs, "Deployment", "-proxy"))
    assert container_port(c, "http") == 8080 and container_port(c, "admin") == 9090
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert c["args"] == [
        "proxy", f"--config-map={NAMESPACE}/lockgate-config", f"--credentials-secret={NAMESPACE}/lockgate-credentials",
        "--host=0.0.0.0", "--port=8080", "--admin-port=9090", "--drain-seconds=293", "--quota-fail-mode=open",
        "--replicas-hint=2",
    ]


def test_proxy_drains_for_the_grace_period_less_the_prestop_delay() -> None:
    objs = render(sets=["proxy.terminationGracePeriodSeconds=60", "proxy.preStopSleepSeconds=10"])
    pod = one(objs, "Deployment", "-proxy")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["terminationGracePeriodSeconds"] == 60
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "10"]
    assert "--drain-seconds=48" in c["args"]  # 60 - 10, and 2 s to end what is left and exit


def test_proxy_replicas_share_one_mcp_session_key_the_operator_generates(default_objs: list[Obj]) -> None:
    # Any replica must verify a session id another replica signed; the chart renders no random value.
    assert not of_kind(default_objs, "Secret")
    (operator,) = containers(one(default_objs, "Deployment", "-operator"))
    assert "--generate-secret=lg-lockgate-mcp-session/session-key" in operator["args"]
    (c,) = containers(one(default_objs, "Deployment", "-proxy"))
    env = {e["name"]: e for e in c["env"]}
    assert env["LOCKGATE_SESSION_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "lg-lockgate-mcp-session", "key": "session-key"}


def test_mcp_session_key_from_a_secret_of_the_users() -> None:
    objs = render(sets=["proxy.mcp.sessionKeySecret.name=my-key", "proxy.mcp.sessionKeySecret.key=k"])
    (operator,) = containers(one(objs, "Deployment", "-operator"))
    assert not any("mcp-session" in a or "my-key" in a for a in operator["args"])  # the user's own Secret
    (c,) = containers(one(objs, "Deployment", "-proxy"))
    env = {e["name"]: e for e in c["env"]}
    assert env["LOCKGATE_SESSION_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "my-key", "key": "k"}


def test_proxy_redis_url_comes_from_the_secret(full_objs: list[Obj]) -> None:
    (c,) = containers(one(full_objs, "Deployment", "-proxy"))
    assert not any(a.startswith("--quota-store") for a in c["args"])  # the URL only travels in the env
    assert any(a.startswith("--replicas-hint=") for a in c["args"])  # fail-open shares the limit
    assert "--quota-fail-mode=closed" in c["args"]
    env = {e["name"]: e for e in c["env"]}
    ref = env["LOCKGATE_QUOTA_STORE_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "lockgate-redis", "key": "url"}


def test_services(default_objs: list[Obj], full_objs: list[Obj]) -> None:
    svc = one(default_objs, "Service", "-proxy")
    assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["ports"][0]["targetPort"] == "http"
    admin = one(default_objs, "Service", "-proxy-admin")
    assert admin["spec"]["ports"] == [{"name": "admin", "port": 9090, "targetPort": "admin", "protocol": "TCP"}]
    node = one(full_objs, "Service", "-proxy")["spec"]
    assert node["type"] == "NodePort" and node["ports"][0]["nodePort"] == 30080


def test_optional_objects_follow_values(default_objs: list[Obj], full_objs: list[Obj]) -> None:
    kinds = {o["kind"] for o in default_objs}
    assert "PodDisruptionBudget" in kinds
    assert not kinds & {"HorizontalPodAutoscaler", "ServiceMonitor"}
    assert [p["metadata"]["name"] for p in of_kind(default_objs, "NetworkPolicy")] == ["lg-lockgate-redis"]
    assert one(default_objs, "Deployment", "-proxy")["spec"]["replicas"] == 2

    assert not of_kind(render(sets=["proxy.pdb.enabled=false"]), "PodDisruptionBudget")
    assert one(full_objs, "PodDisruptionBudget")["spec"]["minAvailable"] == 2

    hpa = one(full_objs, "HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 12)
    assert hpa["scaleTargetRef"]["name"] == "lg-lockgate-proxy"
    # The HPA owns the replica count once it exists.
    assert "replicas" not in one(full_objs, "Deployment", "-proxy")["spec"]

    policies = of_kind(full_objs, "NetworkPolicy")
    assert len(policies) == 2
    proxy_np = one(full_objs, "NetworkPolicy", "-proxy")["spec"]
    assert [r["ports"][0]["port"] for r in proxy_np["ingress"]] == ["http", "admin"]

    sm = one(full_objs, "ServiceMonitor")
    admin_labels = one(full_objs, "Service", "-proxy-admin")["metadata"]["labels"]
    assert sm["spec"]["selector"]["matchLabels"].items() <= admin_labels.items()
    assert sm["spec"]["endpoints"][0]["port"] == "admin" and sm["metadata"]["labels"]["release"] == "prometheus"
    # The traffic Service must not match the ServiceMonitor: metrics live only on the admin port.
    traffic_labels = one(full_objs, "Service", "-proxy")["metadata"]["labels"]
    assert not sm["spec"]["selector"]["matchLabels"].items() <= traffic_labels.items()


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return dict(selector.get("matchLabels") or {}).items() <= labels.items() and not selector.get("matchExpressions")


def test_operator_reaches_the_admin_port_it_is_configured_with() -> None:
    objs = render([FULL], sets=["proxy.adminPort=9191"])
    (c,) = containers(one(objs, "Deployment", "-operator"))
    admin_svc = one(objs, "Service", "-proxy-admin")
    assert f"--proxy-service={admin_svc['metadata']['name']}" in c["args"]
    assert "--proxy-admin-port=9191" in c["args"]
    (proxy,) = containers(one(objs, "Deployment", "-proxy"))
    assert container_port(proxy, "admin") == 9191 and admin_svc["spec"]["ports"][0]["targetPort"] == "admin"
    # metricsIngressFrom names only a monitoring namespace: the operator is let in all the same.
    operator_labels = one(objs, "Deployment", "-operator")["spec"]["template"]["metadata"]["labels"]
    (admin_rule,) = [r for r in one(objs, "NetworkPolicy", "-proxy")["spec"]["ingress"]
                     if r["ports"][0]["port"] == "admin"]
    assert any(set(peer) == {"podSelector"} and selects(peer["podSelector"], operator_labels)
               for peer in admin_rule["from"])
    # Egress is restricted in these values: the operator's own policy lets it out to that port.
    proxy_labels = one(objs, "Deployment", "-proxy")["spec"]["template"]["metadata"]["labels"]
    egress = one(objs, "NetworkPolicy", "-operator")["spec"]["egress"]
    assert any(rule.get("ports") == [{"port": 9191, "protocol": "TCP"}]
               and any(selects(peer["podSelector"], proxy_labels) for peer in rule["to"]) for rule in egress)


def test_proxy_spreads_over_zones_and_nodes(default_objs: list[Obj]) -> None:
    spec = one(default_objs, "Deployment", "-proxy")["spec"]
    constraints = spec["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in constraints} == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for c in constraints:
        assert c["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]


def test_peering_objects(default_objs: list[Obj], full_objs: list[Obj]) -> None:
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in of_kind(default_objs, "KopfPeering")] == [
        (NAMESPACE, "lockgate")]
    assert sorted(p["metadata"]["namespace"] for p in of_kind(full_objs, "KopfPeering")) == ["ai-gateway", "team-b"]
    cluster = render(sets=["operator.allNamespaces=true"])
    assert not of_kind(cluster, "KopfPeering") and len(of_kind(cluster, "ClusterKopfPeering")) == 1
    assert not of_kind(render(sets=["operator.peering.enabled=false"]), "KopfPeering")


def test_service_accounts_exist(default_objs: list[Obj]) -> None:
    accounts = {sa["metadata"]["name"] for sa in of_kind(default_objs, "ServiceAccount")}
    for deploy in of_kind(default_objs, "Deployment"):
        assert deploy["spec"]["template"]["spec"]["serviceAccountName"] in accounts


def test_schema_is_self_contained() -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k == "$ref")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(json.loads((CHART / "values.schema.json").read_text(encoding="utf-8")))
    assert refs and all(r.startswith("#/") for r in refs)


@pytest.mark.parametrize("bad, error", [
    ("proxy.quota.store=etcd", "proxy.quota.store"),
    ("proxy.replicas=-1", "proxy.replicas"),
    ("proxy.service.type=Ingress", "proxy.service.type"),
    ("proxy.tpyo=1", "tpyo"),
    ("podSecurityContext.runAsNonRoot=false", "runAsNonRoot"),
    ("podSecurityContext.runAsUser=0", "runAsUser"),
    ("containerSecurityContext.allowPrivilegeEscalation=true", "allowPrivilegeEscalation"),
    ("operator.watchNamespaces={Not_A_Namespace}", "watchNamespaces"),
    ("proxy.quota.redis.url=http://cache:6379", "proxy.quota.redis.url"),
])
def test_schema_rejects_bad_values(bad: str, error: str) -> None:
    proc = run_helm(template_args(sets=[bad]), check=False)
    assert proc.returncode != 0
    # helm <3.18 names the field proxy.quota.store, later ones /proxy/quota/store.
    assert "schema" in proc.stderr
    assert error in proc.stderr or error.replace(".", "/") in proc.stderr, proc.stderr


def test_by_default_the_proxies_count_in_the_bundled_redis(default_objs: list[Obj]) -> None:
    redis = one(default_objs, "StatefulSet", "-redis")
    svc = one(default_objs, "Service", "-redis")
    (c,) = containers(one(default_objs, "Deployment", "-proxy"))
    env = {e["name"]: e for e in c["env"]}
    url = env["LOCKGATE_QUOTA_STORE_URL"]["value"]
    assert url == f"redis://:$(LOCKGATE_REDIS_PASSWORD)@lg-lockgate-redis.{NAMESPACE}.svc:6379/0"
    assert [e["name"] for e in c["env"]].index("LOCKGATE_REDIS_PASSWORD") < [e["name"] for e in c["env"]].index(
        "LOCKGATE_QUOTA_STORE_URL")  # the kubelet expands only variables defined before
    password = env["LOCKGATE_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password == {"name": "lg-lockgate-redis", "key": "password"}
    (operator,) = containers(one(default_objs, "Deployment", "-operator"))
    assert "--generate-secret=lg-lockgate-redis/password" in operator["args"]
    assert svc["metadata"]["name"] == "lg-lockgate-redis" and svc["spec"]["ports"][0]["port"] == 6379
    assert svc["spec"]["selector"].items() <= redis["spec"]["template"]["metadata"]["labels"].items()
    # Persistence on: an append-only file on a claim of its own.
    (server,) = containers(redis)
    args = server["args"]
    assert args[args.index("--appendonly") + 1] == "yes" and args[args.index("--dir") + 1] == "/data"
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": password}} in server["env"]
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data" and claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert server["image"] == "docker.io/library/redis:7.4-alpine"
    # Only the proxies get in.
    policy = one(default_objs, "NetworkPolicy", "-redis")["spec"]
    proxy_labels = one(default_objs, "Deployment", "-proxy")["spec"]["template"]["metadata"]["labels"]
    assert selects(policy["podSelector"], redis["spec"]["template"]["metadata"]["labels"])
    ((peer,),) = [r["from"] for r in policy["ingress"]]
    assert selects(peer["podSelector"], proxy_labels)
    operator_labels = one(default_objs, "Deployment", "-operator")["spec"]["template"]["metadata"]["labels"]
    assert not selects(peer["podSelector"], operator_labels)
    # With egress restricted by the chart's own policy, the proxies may still reach it.
    objs = render(sets=["networkPolicy.enabled=true", "networkPolicy.egress[0].ports[0].port=443"])
    egress = one(objs, "NetworkPolicy", "-proxy")["spec"]["egress"]
    assert any(rule.get("ports") == [{"port": 6379, "protocol": "TCP"}]
               and selects(rule["to"][0]["podSelector"], redis["spec"]["template"]["metadata"]["labels"])
               for rule in egress)


def test_a_managed_redis_replaces_the_bundled_one() -> None:
    objs = render(sets=["proxy.quota.redis.url=rediss+cluster://cache.example:6379",
                        "proxy.quota.redis.tlsCASecret.name=redis-ca"])
    assert not of_kind(objs, "StatefulSet") and not [s for s in of_kind(objs, "Service") if "redis" in s["metadata"]["name"]]
    deploy = one(objs, "Deployment", "-proxy")
    (c,) = containers(deploy)
    env = {e["name"]: e for e in c["env"]}
    assert env["LOCKGATE_QUOTA_STORE_URL"] == {"name": "LOCKGATE_QUOTA_STORE_URL",
                                               "value": "rediss+cluster://cache.example:6379"}
    assert env["LOCKGATE_QUOTA_STORE_CA"]["value"] == "/etc/lockgate/redis-ca/ca.crt"
    assert {"name": "redis-ca", "mountPath": "/etc/lockgate/redis-ca", "readOnly": True} in c["volumeMounts"]
    volume = next(v for v in deploy["spec"]["template"]["spec"]["volumes"] if v["name"] == "redis-ca")
    assert volume["secret"]["secretName"] == "redis-ca"
    (operator,) = containers(one(objs, "Deployment", "-operator"))
    assert not any("redis" in a for a in operator["args"] if a.startswith("--generate-secret"))


def test_the_memory_store_keeps_the_month_on_a_volume_per_pod() -> None:
    objs = render(sets=["proxy.quota.store=memory", "proxy.replicas=1"])
    assert not of_kind(objs, "Deployment") or all("proxy" not in d["metadata"]["name"] for d in of_kind(objs, "Deployment"))
    proxy = one(objs, "StatefulSet", "-proxy")
    (c,) = containers(proxy)
    assert "--quota-store=memory" in c["args"] and "--state-dir=/var/lib/lockgate" in c["args"]
    assert "--replicas-hint=1" in c["args"]
    assert {"name": "state", "mountPath": "/var/lib/lockgate"} in c["volumeMounts"]
    (claim,) = proxy["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "state"
    assert not [s for s in of_kind(objs, "StatefulSet") if s["metadata"]["name"].endswith("-redis")]
    # Approximate per-pod limits, opted into, with the autoscaler: it scales the StatefulSet.
    objs = render(sets=["proxy.quota.store=memory", "proxy.quota.memory.approximate=true",
                        "proxy.autoscaling.enabled=true"])
    assert one(objs, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    (c,) = containers(one(objs, "StatefulSet", "-proxy"))
    assert "--replicas-hint=2" in c["args"]
    # No persistence: an emptyDir, and a Deployment again.
    objs = render(sets=["proxy.quota.store=memory", "proxy.replicas=1", "proxy.quota.memory.persistence.enabled=false"])
    deploy = one(objs, "Deployment", "-proxy")
    assert {"name": "state", "emptyDir": {"sizeLimit": "64Mi"}} in deploy["spec"]["template"]["spec"]["volumes"]


@pytest.mark.parametrize("sets", [
    ["proxy.quota.store=memory"],  # 2 replicas by default
    ["proxy.quota.store=memory", "proxy.replicas=1", "proxy.autoscaling.enabled=true"],
])
def test_the_schema_refuses_per_pod_limits_unless_asked_for(sets: list[str]) -> None:
    proc = run_helm(template_args(sets=sets), check=False)
    assert proc.returncode != 0 and "schema" in proc.stderr, proc.stderr
    assert run_helm(template_args(sets=[*sets, "proxy.quota.memory.approximate=true"])).returncode == 0


def test_two_renders_are_byte_identical_and_nothing_looks_the_cluster_up() -> None:
    for values in ([], [FULL]):
        first, second = (run_helm(template_args(values)).stdout for _ in range(2))
        assert first == second
    varying = re.compile(r"\b(lookup|randAlphaNum|randAlpha|randAscii|randNumeric|randBytes|uuidv4|genPrivateKey|genCA"
                         r"|genSelfSignedCert|now)\b")
    for template in (CHART / "templates").rglob("*"):
        if template.is_file():
            actions = re.findall(r"\{\{(?!-?\s*/\*)(.*?)\}\}", template.read_text(encoding="utf-8"), re.S)
            used = {m.group(1) for action in actions for m in [varying.search(action)] if m}
            assert not used, f"{template.name} calls {used}: two renders would differ"


def test_notes() -> None:
    notes = render_notes()
    assert "port-forward svc/lg-lockgate-proxy 8080:80" in notes
    assert "lg-lockgate-proxy-admin.lockgate-system.svc:9090/metrics" in notes
    assert "Quotas are exact" in notes and "quotas are counted in memory" not in notes
    memory = render_notes(["proxy.quota.store=memory", "proxy.quota.memory.approximate=true",
                           "proxy.service.type=NodePort"])
    assert "quotas are counted in memory" in memory, "two replicas with memory quotas deserve a warning"
    assert "NODE_PORT" in memory
    assert "crds.install is false" in render_notes(["crds.install=false"])


def test_the_batch_api_mounts_a_shared_volume_for_its_files() -> None:
    objs = render(sets=["proxy.batch.enabled=true", "proxy.batch.files.storageClassName=nfs"])
    (claim,) = of_kind(objs, "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"] and claim["spec"]["storageClassName"] == "nfs"
    deploy = one(objs, "Deployment", "-proxy")
    (c,) = containers(deploy)
    assert "--batch-files-dir=/var/lib/lockgate/batch-files" in c["args"]
    assert {"name": "batch-files", "mountPath": "/var/lib/lockgate/batch-files"} in c["volumeMounts"]
    volume = next(v for v in deploy["spec"]["template"]["spec"]["volumes"] if v["name"] == "batch-files")
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    mine = render(sets=["proxy.batch.enabled=true", "proxy.batch.files.existingClaim=shared-files"])
    assert not of_kind(mine, "PersistentVolumeClaim")
    volume = next(v for v in one(mine, "Deployment", "-proxy")["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == "batch-files")
    assert volume["persistentVolumeClaim"]["claimName"] == "shared-files"
    assert not any("batch" in a for a in containers(one(render(), "Deployment", "-proxy"))[0]["args"])
    refused = run_helm(template_args(sets=["proxy.batch.enabled=true", "proxy.quota.store=memory", "proxy.replicas=1"]), check=False)
    assert refused.returncode != 0 and "proxy.batch.enabled needs proxy.quota.store: redis" in refused.stderr


def test_proxy_workers_follow_the_cpu_limit_with_redis_and_a_number_given() -> None:
    limited = render(sets=["proxy.resources.limits.cpu=1500m"])
    (c,) = containers(one(limited, "Deployment", "-proxy"))
    env = {e["name"]: e for e in c["env"]}
    assert env["LOCKGATE_WORKERS"]["valueFrom"]["resourceFieldRef"] == {"resource": "limits.cpu", "divisor": "1"}
    assert not any(a.startswith("--workers") for a in c["args"])
    for sets in ([], ["proxy.resources.limits.cpu=2", "proxy.quota.store=memory", "proxy.replicas=1"]):
        objs = render(sets=sets)  # no CPU limit, or the memory store (a StatefulSet: it keeps the month)
        (workload,) = [o for o in objs if o["kind"] in ("Deployment", "StatefulSet")
                       and o["metadata"]["name"].endswith("-proxy")]
        (c,) = containers(workload)
        assert "LOCKGATE_WORKERS" not in {e["name"] for e in c["env"]}  # the process decides (auto)
    (c,) = containers(one(render(sets=["proxy.workers=3"]), "Deployment", "-proxy"))
    assert "--workers=3" in c["args"]
