"""The test node itself: pods run the images built here, reach the API server
with their mounted ServiceAccount tokens, Services route (kube-proxy), and
nothing a pod sends leaves the node."""

from __future__ import annotations

import ipaddress
import json
import urllib.request

from tests.e2e.lockgate_env import wait_for
from tests.kube.node import Node
from tests.kube.nodeconf import SERVICE_CIDR
from tests.node.pods import apply, get, run_to_completion, wait_ready

NS = "default"

# Calls the API server as the pod's own ServiceAccount, the way client
# libraries do in a cluster: the `kubernetes` Service, the mounted token and CA.
CALL_API = """
import json, os, ssl, urllib.request, urllib.error
d = "/var/run/secrets/kubernetes.io/serviceaccount"
ctx = ssl.create_default_context(cafile=d + "/ca.crt")
host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
req = urllib.request.Request(f"https://{host}:{port}/api/v1/namespaces/default/pods",
                             headers={"Authorization": "Bearer " + open(d + "/token").read()})
try:
    urllib.request.urlopen(req, context=ctx, timeout=10)
    print(json.dumps({"host": host, "status": 200}))
except urllib.error.HTTPError as e:
    print(json.dumps({"host": host, "status": e.code, "message": json.load(e)["message"]}))
"""


def test_a_pod_reaches_the_api_server_with_its_mounted_token(node: Node) -> None:
    phase, log = run_to_completion(node, NS, "api-caller", node.images.base.ref, CALL_API)
    assert phase == "Succeeded", log
    answer = json.loads(log.strip().splitlines()[-1])
    assert answer["host"] == node.control_plane.service_ip
    # Authenticated (TLS to the Service IP, token accepted), and RBAC says no.
    assert answer["status"] == 403
    assert "system:serviceaccount:default:default" in answer["message"]


def test_a_cluster_ip_routes_from_the_host_and_from_a_pod(node: Node) -> None:
    apply(node, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                     "automountServiceAccountToken": False,
                     "containers": [{"name": "web", "image": node.images.base.ref,
                                     "command": ["python3", "-m", "http.server", "8080", "-d", "/etc"],
                                     "ports": [{"containerPort": 8080}],
                                     "readinessProbe": {"httpGet": {"path": "/hostname", "port": 8080},
                                                        "periodSeconds": 1}}]}}},
    }, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    })
    (pod,) = wait_ready(node, NS, "app=web", 1)
    svc = get(node, "service", "web", NS) or {}
    ip = svc["spec"]["clusterIP"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(SERVICE_CIDR)
    url = f"http://{ip}/hostname"

    def answered() -> str | None:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.read().decode().strip()
        except OSError:
            return None

    # kube-proxy writes its rules shortly after the endpoints are ready.
    assert wait_for(answered, 30, f"GET {url} from the host") == pod["metadata"]["name"]
    # From a pod: by its address and by its name, which the cluster DNS resolves.
    script = ("import socket, urllib.request\n"
              f"print(urllib.request.urlopen('{url}', timeout=5).read().decode())\n"
              "print(urllib.request.urlopen('http://web/hostname', timeout=5).read().decode())\n"
              "print(socket.gethostbyname('web.default.svc.cluster.local'))\n")
    phase, log = run_to_completion(node, NS, "web-client", node.images.base.ref, script,
                                   automountServiceAccountToken=False)
    name = pod["metadata"]["name"]
    assert (phase, log.split()) == ("Succeeded", [name, name, ip]), log


def test_nothing_a_pod_sends_leaves_the_node(node: Node) -> None:
    # 192.0.2.1 is TEST-NET-1: no route from the node, and the FORWARD guard
    # would drop it anyway. Also the host's other addresses are out of reach,
    # and the cluster DNS answers for the cluster's names only.
    script = """
import socket
try:
    print("resolved", socket.getaddrinfo("example.com", 80))
except OSError as e:
    print("blocked", "example.com", type(e).__name__)
for target in [("192.0.2.1", 80), ("203.0.113.7", 443)]:
    try:
        socket.create_connection(target, timeout=3).close()
        print("reached", target)
    except OSError as e:
        print("blocked", target, type(e).__name__)
"""
    phase, log = run_to_completion(node, NS, "escaper", node.images.base.ref, script,
                                   automountServiceAccountToken=False)
    assert phase == "Succeeded", log
    assert "reached" not in log and "resolved" not in log and log.count("blocked") == 3, log

