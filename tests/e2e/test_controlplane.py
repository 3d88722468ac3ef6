"""The test control plane itself: a real apiserver with real RBAC."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.kube.controlplane import ControlPlane, wait_until

pytestmark = pytest.mark.e2e


def test_server_runs_the_pinned_release(kube: ControlPlane) -> None:
    out = json.loads(kube.kubectl("version", "-o", "json").stdout)
    assert out["serverVersion"]["gitVersion"] == kube.binaries.versions["k8s"]
    assert kube.server.startswith("https://127.0.0.1:")


def test_kubectl_creates_a_namespace_and_a_configmap(kube: ControlPlane) -> None:
    ns = f"cp-smoke-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", ns)
    kube.kubectl("create", "configmap", "settings", "-n", ns, "--from-literal=mode=strict")

    got = json.loads(kube.kubectl("get", "configmap", "settings", "-n", ns, "-o", "json").stdout)
    assert got["data"] == {"mode": "strict"}
    phase = kube.kubectl("get", "namespace", ns, "-o", "jsonpath={.status.phase}").stdout
    assert phase == "Active"


def _read_secret(api: client.CoreV1Api, namespace: str, name: str) -> int:
    """HTTP status of a GET of one Secret."""
    try:
        api.read_namespaced_secret(name, namespace)
    except ApiException as e:
        return int(e.status)
    return 200


def _as(kubeconfig: Path) -> client.CoreV1Api:
    api_client = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    return client.CoreV1Api(api_client)


def test_token_request_identity(kube: ControlPlane, namespace: str) -> None:
    sa_config = kube.service_account_kubeconfig(namespace, "reader", create=True)
    who = json.loads(kube.kubectl("auth", "whoami", "-o", "json", kubeconfig=sa_config).stdout)
    assert who["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:reader"


def test_secret_access_is_granted_by_resource_name_only(kube: ControlPlane, namespace: str) -> None:
    kube.kubectl("create", "serviceaccount", "proxy", "-n", namespace)
    for name in ("provider-credentials", "other"):
        kube.kubectl("create", "secret", "generic", name, "-n", namespace, "--from-literal=k=v")
    proxy = _as(kube.service_account_kubeconfig(namespace, "proxy"))

    assert _read_secret(proxy, namespace, "provider-credentials") == 403

    kube.kubectl(
        "create", "role", "read-credentials", "-n", namespace,
        "--verb=get", "--resource=secrets", "--resource-name=provider-credentials",
    )
    kube.kubectl(
        "create", "rolebinding", "proxy-reads-credentials", "-n", namespace,
        "--role=read-credentials", f"--serviceaccount={namespace}:proxy",
    )

    # The RBAC authorizer reads bindings from an informer cache: a new binding
    # takes effect a moment after the write returns.
    wait_until(lambda: _read_secret(proxy, namespace, "provider-credentials") == 200, 10, "the grant")
    secret = proxy.read_namespaced_secret("provider-credentials", namespace)
    assert secret.data == {"k": "dg=="}
    assert _read_secret(proxy, namespace, "other") == 403
    # resourceNames cannot authorize a list: the proxy cannot enumerate Secrets.
    with pytest.raises(ApiException) as listed:
        proxy.list_namespaced_secret(namespace)
    assert listed.value.status == 403


def test_install_crds_waits_until_served(kube: ControlPlane, tmp_path: Path) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.cp-test.lockgate.io"},
        "spec": {
            "group": "cp-test.lockgate.io",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}},
            }],
        },
    }
    (tmp_path / "widget.yaml").write_text(json.dumps(crd))

    names = kube.install_crds([tmp_path])

    assert names == ["customresourcedefinition.apiextensions.k8s.io/widgets.cp-test.lockgate.io"]
    kube.kubectl("get", "widgets", "-A")  # served right away, no retry needed
