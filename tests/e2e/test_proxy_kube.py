"""`lockgate proxy` fed by the Kubernetes API: least-privilege RBAC, the API
server going away, and invalid configuration."""

from __future__ import annotations

from urllib.parse import urlparse

from tests.e2e.lockgate_env import Lockgate, apikey, backend, crds, lockgate, route, wait_for  # noqa: F401

PROXY_RBAC = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: proxy}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: proxy}
rules:
  - apiGroups: [""]
    resources: ["configmaps"]
    resourceNames: ["lockgate-config", "lockgate-config-1", "lockgate-config-2"]
    verbs: ["get", "list", "watch"]
  - apiGroups: [""]
    resources: ["secrets"]
    resourceNames: ["lockgate-credentials"]
    verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: proxy}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: proxy}
subjects: [{kind: ServiceAccount, name: proxy}]
"""


def test_proxy_needs_only_its_named_configmaps_and_secret(lockgate: Lockgate) -> None:
    lockgate.apply(PROXY_RBAC)
    kubeconfig = lockgate.kube.service_account_kubeconfig(lockgate.namespace, "proxy")
    upstream = lockgate.upstreams.start("least privilege")
    lockgate.start_operator()
    proxy = lockgate.start_proxy(kubeconfig=kubeconfig)
    lockgate.apply_objects([*backend("a", upstream.port), route(), apikey("team")])

    key = wait_for(lambda: lockgate.secret_value("team-key"), 15, "the generated key")
    assert lockgate.works(proxy, key) == "least privilege"
    assert "Forbidden" not in proxy.process.output() and "watch of" not in proxy.process.output()  # no failed watch


def test_proxy_keeps_its_config_while_the_api_server_is_unreachable(lockgate: Lockgate) -> None:
    server = urlparse(lockgate.kube.server)
    forwarder = lockgate.upstreams.forwarder((server.hostname or "127.0.0.1", server.port or 443))
    upstream = lockgate.upstreams.start("still here")
    lockgate.start_operator()
    proxy = lockgate.start_proxy(kubeconfig=lockgate.kubeconfig_via(forwarder))
    lockgate.apply_objects([*backend("a", upstream.port), route(), apikey("team")])
    key = wait_for(lambda: lockgate.secret_value("team-key"), 15, "the generated key")
    lockgate.works(proxy, key)
    served = proxy.loaded_hash()

    forwarder.cut()
    lockgate.apply_objects([apikey("later")])
    later = wait_for(lambda: lockgate.secret_value("later-key"), 15, "the later key")
    wait_for(lambda: lockgate.published_hash() not in (None, served), 15, "a new configuration published")
    assert lockgate.works(proxy, key) == "still here"  # the last good config keeps serving
    assert proxy.loaded_hash() == served and proxy.admin("/readyz")[0] == 200
    assert lockgate.status_of(proxy, later) == 401

    forwarder.restore()
    lockgate.works(proxy, later, timeout=15)
    assert proxy.loaded_hash() == lockgate.published_hash()


def test_an_invalid_configmap_edit_keeps_the_last_good_config(lockgate: Lockgate) -> None:
    upstream = lockgate.upstreams.start("good")
    lockgate.start_operator()
    proxy = lockgate.start_proxy()
    lockgate.apply_objects([*backend("a", upstream.port), route(), apikey("team")])
    key = wait_for(lambda: lockgate.secret_value("team-key"), 15, "the generated key")
    lockgate.works(proxy, key)
    served = proxy.loaded_hash()

    lockgate.kubectl("patch", "configmap", "lockgate-config", "--type", "merge", "-p", '{"data": {"config.json": "{"}}')
    wait_for(lambda: "does not load" in proxy.process.output(), 10, "the proxy to reject the edit")
    assert proxy.loaded_hash() == served and lockgate.works(proxy, key) == "good"


def test_proxy_is_not_ready_before_its_first_config(lockgate: Lockgate) -> None:
    proxy = lockgate.start_proxy(register=False, wait_ready=False, config_map="not-published-yet")
    wait_for(lambda: proxy.admin("/healthz")[0] == 200, 15, "the proxy to serve its admin port")
    assert proxy.admin("/readyz")[0] == 503 and proxy.loaded_hash() is None
    assert proxy.process.alive()
