"""The operator and proxies as processes on a real kube-apiserver: apply ->
published -> served, status conditions, keys, discovery, restarts."""

from __future__ import annotations

import time

from tests.e2e.lockgate_env import Lockgate, apikey, backend, crds, lockgate, route, wait_for  # noqa: F401


def test_apply_makes_requests_through_the_proxy_succeed(lockgate: Lockgate) -> None:
    upstream = lockgate.upstreams.start("served by a")
    lockgate.start_operator()
    proxy = lockgate.start_proxy()
    lockgate.apply_objects([*backend("a", upstream.port), route(), apikey("team")])

    key = wait_for(lambda: lockgate.secret_value("team-key"), 15, "the generated key")
    assert key.startswith("lg-") and len(key) >= 3 + 43
    answer = wait_for(lambda: (lambda r: r if isinstance(r, str) else None)(lockgate.status_of(proxy, key)),
                      15, "a successful request")
    assert answer == "served by a"

    for kind, name in (("modelprovider", "a"), ("route", "api"), ("apikey", "team")):
        for type_ in ("Accepted", "ResolvedRefs", "Ready", "Programmed"):
            c = wait_for(lambda: lockgate.condition_is(kind, name, type_, "True"), 15, f"{kind}/{name} {type_}")
            assert c["observedGeneration"] == lockgate.get(kind, name)["metadata"]["generation"]
    status = lockgate.get("apikey", "team")["status"]
    assert status["secretName"] == "team-key" and len(status["keyHashPrefix"]) == 12
    secret = lockgate.get("secret", "team-key")
    assert secret["metadata"]["ownerReferences"][0]["kind"] == "ApiKey"
    assert proxy.loaded_hash() == lockgate.published_hash()
