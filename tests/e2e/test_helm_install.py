"""The Helm chart on a real kube-apiserver.

`helm install` puts the chart in; with no kubelet nothing runs its pods, so the
tests run the operator and a proxy as processes with the chart's own command
lines and tokens of the chart's own ServiceAccounts (TokenRequest). The
end-to-end flow then proves the chart's RBAC is enough, and the refusals prove
it is no more than asked. `helm upgrade` must update a CRD whose schema
changed, and `helm uninstall` must leave the CRDs (crds.keep).

The CRDs are cluster-wide, so the tests share one release and run in file
order: the last one upgrades and uninstalls it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.chart_release import (CHART, LOCKGATE_CRDS, REPO, Release, adopt_existing_crds, run_as, selects,
                                     token_of, with_flags)
from tests.e2e.lockgate_env import Lockgate, Proxy, apikey, backend, endpoint_slice, route, wait_for
from tests.integration.quota.redis_server import RedisServer
from tests.kube.controlplane import ControlPlane, free_port

RELEASE = "lockgate"  # names: lockgate-operator, lockgate-proxy (Service and ServiceAccount)
OPERATOR, PROXY, REDIS = "lockgate-operator", "lockgate-proxy", "lockgate-redis"
SESSION_SECRET = "lockgate-mcp-session"
ADMIN_PORT = 9191  # not the default: the operator must follow proxy.adminPort
# Defaults, but for a non-default admin port and the chart's NetworkPolicy on.
INSTALL_SETS = ("--set", f"proxy.adminPort={ADMIN_PORT}", "--set", "networkPolicy.enabled=true")
UPGRADE_FIELD = "upgradeProbe"  # a field only the upgraded chart's Route schema has


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


@pytest.fixture(scope="module")
def release(kube: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    """The chart with its default values, installed once for this module.
    The CRDs are cluster-wide and shared with the session's other tests: they
    are put back as the repository defines them afterwards."""
    if kube.binaries.helm is None:
        pytest.skip("helm was not built (hack/setup.d/35-helm.sh)")
    namespace = f"helm-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", namespace)
    adopt_existing_crds(kube, namespace)
    installed = Release(kube, namespace, tmp_path_factory.mktemp("helm"))
    installed.helm("install", RELEASE, str(CHART), *INSTALL_SETS, "--timeout", "60s")
    for crd in LOCKGATE_CRDS:
        kube.kubectl("wait", "--for=condition=Established", "--timeout=30s", f"crd/{crd}")
    yield installed
    files = [a for crd in sorted((REPO / "crds").glob("lockgate.io_*.yaml")) for a in ("-f", str(crd))]
    kube.kubectl("apply", "--server-side", "--force-conflicts", *files)


@pytest.fixture
def lockgate_in(release: Release, tmp_path: Path) -> Iterator[Lockgate]:
    env = Lockgate(release.kube, release.namespace, tmp_path)
    try:
        yield env
    finally:
        env.close()
        for process in env.processes:  # shown by pytest when the test failed
            sys.stdout.write(f"----- {process.name} log (tail) -----\n"
                             + "\n".join(process.output().splitlines()[-40:]) + "\n")


def re_expand(arg: str, env: Mapping[str, str]) -> str:
    for name, value in env.items():
        arg = arg.replace(f"$({name})", value)
    assert "$(" not in arg, f"{arg}: a variable the container does not have"
    return arg


def start_operator(release: Release, lockgate: Lockgate, liveness: int | None = None) -> Path:
    """The operator as the chart runs it, under its ServiceAccount; its kubeconfig."""
    args = with_flags(release.container_args(OPERATOR),
                      {"--liveness": f"http://127.0.0.1:{liveness or free_port()}/healthz"})
    return run_as(lockgate, f"operator-{len(lockgate.processes)}", args, OPERATOR)


def generated(lockgate: Lockgate) -> dict[str, str]:
    """The values the operator generates, once both exist."""
    return {name: wait_for(lambda: lockgate.secret_value(name, key), 30, f"the generated Secret {name}")
            for name, key in ((REDIS, "password"), (SESSION_SECRET, "session-key"))}


def test_the_flow_works_with_exactly_the_charts_service_accounts(release: Release, lockgate_in: Lockgate,
                                                                  tmp_path: Path) -> None:
    lockgate, kube, ns = lockgate_in, release.kube, release.namespace
    liveness = free_port()
    operator_args = release.container_args(OPERATOR)
    assert "--peering=lockgate" in operator_args  # the default: one active operator among replicas
    # The operator asks the replicas through the admin Service, on the configured port.
    assert f"--proxy-service={PROXY}-admin" in operator_args and f"--proxy-admin-port={ADMIN_PORT}" in operator_args
    operator_config = start_operator(release, lockgate, liveness)
    generated(lockgate)  # written with the chart's RBAC, before any pod that needs them could start

    # The chart's defaults point the proxies at the bundled Redis, with the generated password.
    env = release.container_env(PROXY)
    url = env["LOCKGATE_QUOTA_STORE_URL"]
    password = lockgate.secret_value(REDIS, "password")
    assert url == f"redis://:{password}@{REDIS}.{ns}.svc:6379/0"
    objs = {(o["kind"], o["metadata"]["name"]): o for o in release.manifest()}
    service, statefulset = objs[("Service", REDIS)], objs[("StatefulSet", REDIS)]
    assert service["spec"]["ports"][0]["port"] == 6379
    assert selects({"matchLabels": service["spec"]["selector"]}, statefulset["spec"]["template"]["metadata"]["labels"])
    with redis_running(release, tmp_path) as redis:
        env["LOCKGATE_QUOTA_STORE_URL"] = url.replace(f"{REDIS}.{ns}.svc:6379", f"127.0.0.1:{redis.port}")
        port, admin_port = free_port(), free_port()
        proxy_args = with_flags(release.container_args(PROXY),
                                {"--host": "127.0.0.1", "--port": str(port), "--admin-port": str(admin_port)})
        proxy_config = run_as(lockgate, "proxy", proxy_args, PROXY, env=env)
        proxy = Proxy(lockgate.processes[-1], port, admin_port)
        # What the EndpointSlice controller would publish for the admin Service: the port named admin,
        # the pod's port (here the loopback one of this process).
        lockgate.apply_objects([endpoint_slice(f"{PROXY}-admin-pod", f"{PROXY}-admin", "admin", admin_port)])
        flow(release, lockgate, proxy, redis, liveness)
    for process in lockgate.processes:
        assert process.alive(), process.output()
        assert "Forbidden" not in process.output() and " 403" not in process.output(), process.output()
    refusals(kube, ns, token_of(proxy_config), token_of(operator_config))


@contextlib.contextmanager
def redis_running(release: Release, tmp_path: Path) -> Iterator[RedisServer]:
    """The chart's Redis as its pod runs it: a real redis-server with the chart's arguments and the
    password the operator generated (a loopback port and a scratch directory instead of the pod's)."""
    env = release.container_env(REDIS)
    args = [re_expand(a, env) for a in release.container_args(REDIS)]
    server = RedisServer()
    args[args.index("--port") + 1] = str(server.port)
    args[args.index("--dir") + 1] = str(tmp_path)
    server.extra = args
    server.start()
    try:
        yield server
    finally:
        server.kill()


def flow(release: Release, lockgate: Lockgate, proxy: Proxy, redis: RedisServer, liveness: int) -> None:
    # The chart's NetworkPolicy is on: its admin-port rule lets the operator's pods in.
    objs = {(o["kind"], o["metadata"]["name"]): o for o in release.manifest()}
    operator_labels = objs[("Deployment", OPERATOR)]["spec"]["template"]["metadata"]["labels"]
    admin_rule = next(r for r in objs[("NetworkPolicy", PROXY)]["spec"]["ingress"] if r["ports"][0]["port"] == "admin")
    assert any("podSelector" in peer and selects(peer["podSelector"], operator_labels) for peer in admin_rule["from"])

    upstream = lockgate.upstreams.start("through the chart")
    lockgate.apply_objects([*backend("a", upstream.port), route(), apikey("team")])
    key = wait_for(lambda: lockgate.secret_value("team-key"), 30, "the generated key") or ""
    assert lockgate.works(proxy, key, "through the chart", timeout=30) == "through the chart"
    for kind, name in (("modelprovider", "a"), ("route", "api"), ("apikey", "team")):
        for type_ in ("Ready", "Programmed"):  # status written and proxies asked, under the chart's RBAC
            wait_for(lambda: lockgate.condition_is(kind, name, type_, "True"), 15, f"{kind}/{name} {type_}")
    assert proxy.loaded_hash() == lockgate.published_hash()
    # The request was counted in the Redis the chart points at, and the operator read the usage back.
    counters = redis_client(redis, lockgate.secret_value(REDIS, "password") or "").keys("lockgate:q:*")
    assert counters, "nothing was counted in the chart's Redis"
    usage = wait_for(lambda: ((lockgate.get("apikey", "team") or {}).get("status") or {}).get("usage"), 30,
                     "ApiKey usage mirrored from the proxies' admin port")
    assert usage["requests"] >= 1
    # Written under OwnerReferencesPermissionEnforcement with no rights on apikeys/finalizers.
    (owner,) = (lockgate.get("secret", "team-key") or {})["metadata"]["ownerReferences"]
    assert owner["kind"] == "ApiKey" and owner["controller"] is True
    wait_for(lambda: http_status(f"http://127.0.0.1:{liveness}/healthz") == 200, 10, "Kopf's liveness probe")


def redis_client(server: RedisServer, password: str) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=server.port, password=password, socket_timeout=5)


def refusals(kube: ControlPlane, ns: str, proxy_token: str, operator_token: str) -> None:
    # The proxy's token reads its own Secret and nothing else.
    secrets = f"/api/v1/namespaces/{ns}/secrets"
    assert kube.api("GET", f"{secrets}/lockgate-credentials", token=proxy_token)[0] == 200
    assert kube.api("GET", f"{secrets}/team-key", token=proxy_token)[0] == 403
    assert kube.api("GET", secrets, token=proxy_token)[0] == 403  # list names no resource
    assert kube.api("GET", "/api/v1/namespaces/default/secrets/lockgate-credentials", token=proxy_token)[0] == 403
    assert kube.api("GET", f"/api/v1/namespaces/{ns}/configmaps/other", token=proxy_token)[0] == 403
    assert kube.api("GET", f"/apis/lockgate.io/v1alpha1/namespaces/{ns}/apikeys", token=proxy_token)[0] == 403
    assert kube.api("GET", f"{secrets}/{REDIS}", token=proxy_token)[0] == 403  # read by the kubelet, not the proxy
    # The operator's token stays in the namespaces the chart gave it.
    assert kube.api("GET", secrets, token=operator_token)[0] == 200
    assert kube.api("GET", "/api/v1/namespaces/default/secrets", token=operator_token)[0] == 403
    assert kube.api("GET", f"/api/v1/namespaces/{ns}/pods", token=operator_token)[0] == 403
    configmaps = f"/api/v1/namespaces/{ns}/configmaps"
    assert kube.api("DELETE", f"{configmaps}/lockgate-config-1", token=operator_token)[0] == 404  # allowed, absent
    assert kube.api("DELETE", f"{configmaps}/lockgate-config", token=operator_token)[0] == 403
    assert kube.api("DELETE", f"{secrets}/team-key", token=operator_token)[0] == 403
    # Key Secrets are patched, never replaced; only the credentials Secret is.
    team_key = kube.api("GET", f"{secrets}/team-key", token=operator_token)[1]
    assert kube.api("PUT", f"{secrets}/team-key", team_key, token=operator_token)[0] == 403
    credentials = kube.api("GET", f"{secrets}/lockgate-credentials", token=operator_token)[1]
    assert kube.api("PUT", f"{secrets}/lockgate-credentials", credentials, token=operator_token)[0] == 200


def test_a_second_install_renders_the_same_objects_and_keeps_the_generated_secrets(
        release: Release, lockgate_in: Lockgate) -> None:
    lockgate = lockgate_in
    start_operator(release, lockgate)
    before = generated(lockgate)
    versions = {name: lockgate.obj("secret", name)["metadata"]["resourceVersion"] for name in before}
    manifest = release.helm("get", "manifest", RELEASE).stdout
    assert "kind: Secret" not in manifest  # nothing random is rendered: the operator generates it
    lockgate.processes[-1].stop()

    release.helm("upgrade", RELEASE, str(CHART), *INSTALL_SETS, "--timeout", "60s")  # the second install
    assert release.helm("get", "manifest", RELEASE).stdout == manifest
    # A new operator finds both Secrets and changes neither; one that went missing comes back.
    lockgate.kubectl("delete", "secret", SESSION_SECRET)
    start_operator(release, lockgate)
    after = generated(lockgate)
    assert after[REDIS] == before[REDIS]
    assert lockgate.obj("secret", REDIS)["metadata"]["resourceVersion"] == versions[REDIS]
    assert after[SESSION_SECRET] != before[SESSION_SECRET]  # regenerated, since it was deleted
    assert lockgate.processes[-1].alive(), lockgate.processes[-1].output()


def test_observe_cluster_grants_what_kopf_scanning_reads(release: Release, lockgate_in: Lockgate) -> None:
    release.helm("upgrade", RELEASE, str(CHART), "--reuse-values", "--set", "operator.rbac.observeCluster=true",
                 "--timeout", "60s")
    args = with_flags(release.container_args(OPERATOR), {"--liveness": f"http://127.0.0.1:{free_port()}/healthz"})
    assert "--no-cluster-scan" not in args
    run_as(lockgate_in, "operator", args, OPERATOR)
    lockgate_in.apply_objects([apikey("scanned")])
    wait_for(lambda: lockgate_in.secret_value("scanned-key"), 30, "a key generated with cluster scanning on")
    wait_for(lambda: lockgate_in.condition_is("apikey", "scanned", "Accepted", "True"), 15, "the key accepted")
    (operator,) = lockgate_in.processes
    assert operator.alive() and "Forbidden" not in operator.output(), operator.output()
    assert "Not enough permissions" not in operator.output()  # Kopf's restricted-mode fallback was not needed


def chart_with_new_route_field(dest: Path) -> Path:
    """A copy of the chart whose Route CRD gained an optional spec field."""
    chart = dest / "lockgate"
    shutil.copytree(CHART, chart)
    crd = chart / "templates" / "crds" / "lockgate.io_routes.yaml"
    lines = crd.read_text().splitlines(keepends=True)
    spec = lines.index("          spec:\n")
    props = lines.index("            properties:\n", spec)
    lines[props + 1:props + 1] = [f"              {UPGRADE_FIELD}:\n", "                type: string\n"]
    crd.write_text("".join(lines))
    return chart


def test_upgrade_updates_a_changed_crd_and_uninstall_keeps_the_crds(release: Release, tmp_path: Path) -> None:
    kube, ns = release.kube, release.namespace
    probe = json.dumps(route("probe", **{UPGRADE_FIELD: "v2"}))

    def dry_run() -> subprocess.CompletedProcess[str]:  # the server validates, strictly, and stores nothing
        return kube.kubectl("apply", "-n", ns, "--dry-run=server", "--validate=strict", "-o", "json",
                            "-f", "-", input=probe, check=False)

    before = dry_run()
    assert before.returncode != 0 and f'unknown field "spec.{UPGRADE_FIELD}"' in before.stderr, before.stderr
    generation = json.loads(kube.kubectl("get", "crd", "routes.lockgate.io", "-o", "json").stdout)["metadata"]["generation"]

    release.helm("upgrade", RELEASE, str(chart_with_new_route_field(tmp_path)), "--timeout", "60s")
    crd = json.loads(kube.kubectl("get", "crd", "routes.lockgate.io", "-o", "json").stdout)
    assert crd["metadata"]["generation"] > generation
    spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec_schema["properties"][UPGRADE_FIELD] == {"type": "string"}
    def accepted() -> subprocess.CompletedProcess[str] | None:
        result = dry_run()
        return result if result.returncode == 0 else None

    served = wait_for(accepted, 15, "the new Route schema served")
    assert served is not None
    assert json.loads(served.stdout)["spec"][UPGRADE_FIELD] == "v2"  # kept, not pruned

    out = release.helm("uninstall", RELEASE, "--timeout", "60s")
    for crd_name in LOCKGATE_CRDS:
        assert kube.kubectl("get", "crd", crd_name, check=False).returncode == 0, f"{crd_name} was deleted"
        assert crd_name in out.stdout  # helm reports it kept them (resource policy)
    assert kube.kubectl("get", "deployment", OPERATOR, "-n", ns, check=False).returncode != 0
    assert kube.kubectl("get", "rolebinding", PROXY, "-n", ns, check=False).returncode != 0
    assert kube.kubectl("get", "routes", "-n", ns, "-o", "name").returncode == 0  # the kinds are still served
