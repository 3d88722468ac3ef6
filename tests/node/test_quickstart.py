"""README.md's "In a cluster" on the test node: the chart installed as the
README shows it (tests/node/release.py: default values but the watched
namespace and the images), `examples/in-cluster/` applied, and a chat request
through the proxy Service answered by the development upstream. Then the
chart's default quota store: one count across both proxy replicas, in the
bundled Redis, whose counters outlive a restart on its volume."""

from __future__ import annotations

import time

import openai

from tests.e2e.lockgate_env import wait_for
from tests.node.pods import apply, wait_ready
from tests.node.release import APPS, NS, PROXY, REDIS, Release

# The month's counters (and the like) expire long after a test: they must survive.
KEYS_WITH_TTL = ("local out = {} for _, k in ipairs(redis.call('KEYS', '*')) do "
                 "out[#out + 1] = k .. ' ' .. redis.call('TTL', k) end return out")


def test_the_quickstart_answers_through_the_proxy_service(quickstart: Release) -> None:
    # As README.md waits for it.
    quickstart.node.kubectl("-n", APPS, "wait", "--for=condition=Ready", "--timeout=120s",
                            "apikey/demo", "modelprovider/dev-upstream", "route/openai", timeout=150)
    key = quickstart.secret_value("demo-key")
    assert key
    answer = wait_for(lambda: _outcome(quickstart, key, quickstart.service_url()) == "ok" and
                      quickstart.chat(key, model="small", content="hello"), 60, "the quickstart's answer",
                      interval=0.5)
    assert answer == "echo: hello"


def test_quotas_are_one_count_across_the_proxy_replicas(quickstart: Release) -> None:
    apply(quickstart.node, {"apiVersion": "lockgate.io/v1alpha1", "kind": "ApiKey",
                            "metadata": {"name": "metered", "namespace": APPS},
                            "spec": {"consumer": "metered", "secretName": "metered-key", "limits": {"rpm": 5}}})
    key = wait_for(lambda: quickstart.secret_value("metered-key"), 60, "the metered key")
    wait_for(lambda: (quickstart.condition("apikey", "metered", "Programmed") or {}).get("status") == "True",
             60, "the metered key Programmed on every proxy")
    first, second = (f"http://{p['status']['podIP']}:8080/v1" for p in wait_ready(quickstart.node, NS, PROXY, 2))
    # All five on one replica, then the other: each replica counting alone
    # (or half the limit each) would let some of these through.
    assert [_outcome(quickstart, key, first) for _ in range(5)] == ["ok"] * 5
    assert [_outcome(quickstart, key, second) for _ in range(3)] == [429] * 3
    assert _outcome(quickstart, key, first) == 429


def test_the_counters_outlive_a_restart_of_redis(quickstart: Release) -> None:
    (old,) = wait_ready(quickstart.node, NS, REDIS, 1)
    before = _long_lived_keys(quickstart, old["metadata"]["name"])
    assert before, "the earlier requests left no month counters in Redis"
    time.sleep(1.5)  # appendfsync everysec: what was written is on the volume after a second
    quickstart.kubectl("delete", "pod", old["metadata"]["name"], "--wait=true")
    (new,) = wait_ready(quickstart.node, NS, REDIS, 1)
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    assert before <= _long_lived_keys(quickstart, new["metadata"]["name"])
    # The proxies reconnect: a request is counted again.
    key = quickstart.secret_value("demo-key") or ""
    assert wait_for(lambda: _outcome(quickstart, key, quickstart.service_url()) == "ok", 60,
                    "an answer after Redis restarted", interval=0.5)


def _outcome(release: Release, key: str, url: str) -> str | int:
    """"ok", or the HTTP status of the OpenAI error the proxy answered with."""
    try:
        release.chat(key, url, model="small")
        return "ok"
    except openai.APIStatusError as e:
        return e.status_code
    except openai.APIConnectionError:
        return "unreachable"


def _long_lived_keys(release: Release, pod: str) -> set[str]:
    out = release.kubectl("exec", pod, "--", "sh", "-c",
                          f'redis-cli -a "$REDIS_PASSWORD" --no-auth-warning eval "{KEYS_WITH_TTL}" 0')
    pairs = (line.rsplit(" ", 1) for line in out.splitlines() if " " in line)
    return {k for k, ttl in pairs if int(ttl) == -1 or int(ttl) > 3600}
