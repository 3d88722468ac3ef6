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

import json
import os
import shutil
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.lockgate_env import Lockgate, Proxy, apikey, backend, endpoint_slice, route, wait_for
from tests.kube.controlplane import ControlPlane, free_port

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "lockgate"
RELEASE = "lockgate"  # names: lockgate-operator, lockgate-proxy (Service and ServiceAccount)
OPERATOR, PROXY = "lockgate-operator", "lockgate-proxy"
LOCKGATE_CRDS = tuple(f"{plural}.lockgate.io" for plural in ("modelproviders", "apikeys", "routes", "mcpservers"))
UPGRADE_FIELD = "upgradeProbe"  # a field only the upgraded chart's Route schema has


@dataclass
class Release:
    kube: ControlPlane
    namespace: str
    home: Path  # helm's cache, config and data: nothing of the user's is touched

    def helm(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        assert self.kube.binaries.helm is not None
        env = {**self.kube.env, **{f"HELM_{k}_HOME": str(self.home / k.lower()) for k in ("CACHE", "CONFIG", "DATA")}}
        proc = subprocess.run([str(self.kube.binaries.helm), *args, "--namespace", self.namespace],
                              env=env, capture_output=True, text=True, timeout=timeout, check=False)
        assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def container_args(self, deployment: str) -> list[str]:
        """The arguments the chart gives the container of a Deployment, as installed."""
        manifest = self.helm("get", "manifest", RELEASE).stdout
        for obj in yaml.safe_load_all(manifest):
            if obj and obj["kind"] == "Deployment" and obj["metadata"]["name"] == deployment:
                return [str(a) for a in obj["spec"]["template"]["spec"]["containers"][0]["args"]]
        raise AssertionError(f"the release has no Deployment {deployment}")


def with_flags(args: list[str], replaced: Mapping[str, str]) -> list[str]:
    """`args` with the values of some --flag=value arguments replaced (each must be there)."""
    missing = [f for f in replaced if not any(a.startswith(f + "=") for a in args)]
    assert not missing, f"the chart no longer passes {missing}: {args}"
    return [next((f"{f}={v}" for f, v in replaced.items() if a.startswith(f + "=")), a) for a in args]


def adopt_existing_crds(kube: ControlPlane, namespace: str) -> None:
    """CRDs that another test applied earlier in this session are handed to
    the release, as an admin adopting a kubectl-installed Lockgate would."""
    for crd in LOCKGATE_CRDS:
        if kube.kubectl("get", "crd", crd, check=False).returncode == 0:
            kube.kubectl("label", "--overwrite", "crd", crd, "app.kubernetes.io/managed-by=Helm")
            kube.kubectl("annotate", "--overwrite", "crd", crd, f"meta.helm.sh/release-name={RELEASE}",
                         f"meta.helm.sh/release-namespace={namespace}")


def token_of(kubeconfig: Path) -> str:
    return str(yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"])


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
    installed.helm("install", RELEASE, str(CHART), "--timeout", "60s")
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


def run_as(lockgate: Lockgate, name: str, args: list[str], service_account: str) -> Path:
    """Start `lockgate <args>` acting as the chart's ServiceAccount, as its pod
    would (POD_NAMESPACE from the downward API); its kubeconfig."""
    kubeconfig = lockgate.kube.service_account_kubeconfig(lockgate.namespace, service_account)
    # KUBECONFIG too, so nothing in the process can fall back to the admin's.
    lockgate._spawn(name, *args, "--kubeconfig", str(kubeconfig),
                    env={"POD_NAMESPACE": lockgate.namespace, "KUBECONFIG": str(kubeconfig)})
    return kubeconfig


def test_the_flow_works_with_exactly_the_charts_service_accounts(release: Release, lockgate_in: Lockgate) -> None:
    lockgate, kube, ns = lockgate_in, release.kube, release.namespace
    liveness = free_port()
    operator_args = with_flags(release.container_args(OPERATOR),
                               {"--liveness": f"http://127.0.0.1:{liveness}/healthz"})
    assert "--peering=lockgate" in operator_args  # the default: one active operator among replicas
    operator_config = run_as(lockgate, "operator", operator_args, OPERATOR)

    port, admin_port = free_port(), free_port()
    proxy_args = with_flags(release.container_args(PROXY),
                            {"--host": "127.0.0.1", "--port": str(port), "--admin-port": str(admin_port)})
    proxy_config = run_as(lockgate, "proxy", proxy_args, PROXY)
    proxy = Proxy(lockgate.processes[-1], port, admin_port)
    # What the EndpointSlice controller would publish for a proxy pod; on
    # loopback the admin port differs per process, so the slice names it.
    lockgate.apply_objects([endpoint_slice(f"{PROXY}-pod", PROXY, "admin", admin_port)])

    upstream = lockgate.upstreams.start("through the chart")
    lockgate.apply_objects([*backend("a", upstream.port), route(), apikey("team")])
    key = wait_for(lambda: lockgate.secret_value("team-key"), 30, "the generated key") or ""
    assert lockgate.works(proxy, key, "through the chart", timeout=30) == "through the chart"
    for kind, name in (("modelprovider", "a"), ("route", "api"), ("apikey", "team")):
        for type_ in ("Ready", "Programmed"):  # status written and proxies asked, under the chart's RBAC
            wait_for(lambda: lockgate.condition_is(kind, name, type_, "True"), 15, f"{kind}/{name} {type_}")
    assert proxy.loaded_hash() == lockgate.published_hash()
    # Written under OwnerReferencesPermissionEnforcement with no rights on apikeys/finalizers.
    (owner,) = (lockgate.get("secret", "team-key") or {})["metadata"]["ownerReferences"]
    assert owner["kind"] == "ApiKey" and owner["controller"] is True
    wait_for(lambda: http_status(f"http://127.0.0.1:{liveness}/healthz") == 200, 10, "Kopf's liveness probe")
    for process in lockgate.processes:
        assert process.alive(), process.output()
        assert "Forbidden" not in process.output() and " 403" not in process.output(), process.output()

    # The proxy's token reads its own Secret and nothing else.
    proxy_token = token_of(proxy_config)
    secrets = f"/api/v1/namespaces/{ns}/secrets"
    assert kube.api("GET", f"{secrets}/lockgate-credentials", token=proxy_token)[0] == 200
    assert kube.api("GET", f"{secrets}/team-key", token=proxy_token)[0] == 403
    assert kube.api("GET", secrets, token=proxy_token)[0] == 403  # list names no resource
    assert kube.api("GET", "/api/v1/namespaces/default/secrets/lockgate-credentials", token=proxy_token)[0] == 403
    assert kube.api("GET", f"/api/v1/namespaces/{ns}/configmaps/other", token=proxy_token)[0] == 403
    assert kube.api("GET", f"/apis/lockgate.io/v1alpha1/namespaces/{ns}/apikeys", token=proxy_token)[0] == 403
    # The operator's token stays in the namespaces the chart gave it.
    operator_token = token_of(operator_config)
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
