"""An MCPServer's own gateway key on a real kube-apiserver: generated into a Secret the server
owns, accepted by the proxy for the models it is scoped to and no others."""

from __future__ import annotations

from tests.e2e.lockgate_env import Lockgate, backend, crds, lockgate, route, wait_for  # noqa: F401  (fixtures)


def test_an_mcpservers_gateway_key_calls_the_model_api_within_its_scope(lockgate: Lockgate) -> None:
    upstream = lockgate.upstreams.start("served by a")
    lockgate.start_operator()
    proxy = lockgate.start_proxy()
    server = {"apiVersion": "lockgate.io/v1alpha1", "kind": "MCPServer", "metadata": {"name": "weather"},
              "spec": {"path": "/weather", "upstream": {"url": "http://127.0.0.1:9/mcp"},
                       "gatewayKey": {"secretName": "weather-llm", "models": ["m1"], "limits": {"rpm": 100}}}}
    lockgate.apply_objects([*backend("a", upstream.port), *backend("b", upstream.port, model="m2"), route(), server])
    key = wait_for(lambda: lockgate.secret_value("weather-llm"), 15, "the server's generated key")
    assert lockgate.works(proxy, key, "served by a")
    assert lockgate.status_of(proxy, key, model="m2") == 403  # outside the key's models
    secret = lockgate.get("secret", "weather-llm")
    assert secret is not None
    assert [(o["kind"], o["name"]) for o in secret["metadata"]["ownerReferences"]] == [("MCPServer", "weather")]
    status = wait_for(lambda: (lockgate.obj("mcpserver", "weather").get("status") or {}).get("keyHashPrefix") and
                      lockgate.obj("mcpserver", "weather")["status"], 15, "the server's key in its status")
    assert status["gatewayKeySecret"] == "weather-llm"
    for process in lockgate.processes:  # the key lives in its Secret only
        assert key not in process.output()
