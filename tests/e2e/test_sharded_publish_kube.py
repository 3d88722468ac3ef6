"""A configuration with hundreds of ApiKeys through the real API server: keys
sharded over ConfigMaps, one new key rewrites one shard and the head, the
proxy decodes only that shard, and no other object's status is rewritten."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from lockgate.api import ir
from lockgate.api.config_shards import KEY_SHARDS, shard_name, shard_of
from lockgate.common.kube_client import KubeApi, resource_path
from lockgate.operator.publish import Publisher
from lockgate.proxy.source_kube import KubeSource
from tests.e2e.lockgate_env import (  # noqa: F401  (fixtures)
    Lockgate, apikey, backend, crds, lockgate, route, wait_for,
)
from tests.kube.controlplane import ControlPlane

KEYS = 300


def key(i: int | str) -> ir.ConsumerKey:
    return ir.ConsumerKey(id=f"ns/k{i}", consumer="c", hashes=(ir.ApiKeyHash(sha256=f"{hash(str(i)) & 0xfff:064x}"),))


def config_of(keys: list[ir.ConsumerKey]) -> ir.GatewayConfig:
    return ir.GatewayConfig(keys=tuple(sorted(keys, key=lambda k: k.id))).with_hash()


async def versions(api: KubeApi, namespace: str) -> dict[str, str]:
    listing = await api.request("GET", resource_path("v1", "configmaps", namespace))
    return {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in listing["items"]
            if i["metadata"]["name"].startswith("cfg")}


async def test_one_new_key_writes_one_shard_and_the_head(kube: ControlPlane, namespace: str) -> None:
    writer = KubeApi.from_kubeconfig(str(kube.kubeconfig))
    publisher = Publisher(writer, namespace, "cfg", "creds")
    source = KubeSource(KubeApi.from_kubeconfig(str(kube.kubeconfig)), (namespace, "cfg"), (namespace, "creds"))
    credentials = ir.Credentials(values={"ns/p": "sk-test"})
    updates = source.updates()
    try:
        keys = [key(i) for i in range(KEYS)]
        first = config_of(keys)
        assert await publisher.publish(first, credentials)
        assert publisher.writes == 1 + 1 + 1 + KEY_SHARDS  # the Secret, the base, the head, every shard
        snapshot = await asyncio.wait_for(anext(updates), 30)
        assert snapshot.config == first and snapshot.credentials == credentials
        assert source.parts.decoded == 1 + KEY_SHARDS
        before = await versions(writer, namespace)
        assert set(before) == {"cfg", "cfg-1", *(shard_name("cfg", s) for s in range(KEY_SHARDS))}

        second = config_of([*keys, key("new")])
        assert await publisher.publish(second, credentials)
        assert publisher.writes == 3 + KEY_SHARDS + 2
        snapshot = await asyncio.wait_for(anext(updates), 30)
        assert snapshot.config == second and len(snapshot.config.keys) == KEYS + 1
        assert source.parts.decoded == 1 + KEY_SHARDS + 1  # only the changed shard decoded again
        after = await versions(writer, namespace)
        changed = sorted(name for name in after if after[name] != before[name])
        assert changed == ["cfg", shard_name("cfg", shard_of("ns/knew"))]
        assert source.load_failures == 0  # a shard seen before its head is waited for, not a failure
    finally:
        await updates.aclose()
        await writer.close()


def _create(lockgate: Lockgate, objects: list[dict[str, Any]]) -> None:
    """Create the objects through the API, sixteen at a time (kubectl apply takes one by one)."""
    async def create_all() -> None:
        api = KubeApi.from_kubeconfig(str(lockgate.kube.kubeconfig))
        limit = asyncio.Semaphore(16)

        async def create(obj: dict[str, Any]) -> None:
            group_version, plural = obj["apiVersion"], "secrets" if obj["kind"] == "Secret" else "apikeys"
            async with limit:
                await api.create(resource_path(group_version, plural, lockgate.namespace), obj)
        try:
            await asyncio.gather(*(create(o) for o in objects))
        finally:
            await api.close()

    asyncio.run(create_all())


def _key_objects(count: int) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for i in range(count):
        objects.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"bg{i}-key"},
                        "stringData": {"api-key": f"lg-bg{i}-0123456789abcdef0123456789"}})
        objects.append(apikey(f"bg{i}"))
    return objects


def _versions_of_keys(lockgate: Lockgate) -> dict[str, str]:
    out = lockgate.kubectl("get", "apikeys", "-o", "json").stdout
    return {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in json.loads(out)["items"]}


def _settled(lockgate: Lockgate) -> bool:
    """Every ApiKey Programmed, with the usage the operator mirrors from the proxies (every key's, idle ones too)."""
    items = json.loads(lockgate.kubectl("get", "apikeys", "-o", "json").stdout)["items"]
    return len(items) >= KEYS and all(
        "usage" in (i.get("status") or {}) and
        any(c["type"] == "Programmed" and c["status"] == "True" for c in (i.get("status") or {}).get("conditions", []))
        for i in items)


def test_operator_adds_a_key_among_hundreds_without_touching_the_others(lockgate: Lockgate) -> None:
    upstream = lockgate.upstreams.start("served")
    lockgate.apply_objects([*backend("a", upstream.port), route()])
    _create(lockgate, _key_objects(KEYS))
    operator = lockgate.start_operator()
    proxy = lockgate.start_proxy()
    lockgate.works(proxy, f"lg-bg{KEYS - 1}-0123456789abcdef0123456789", "served", timeout=90)
    wait_for(lambda: _settled(lockgate), 90, "every ApiKey Programmed, its usage mirrored")
    head = lockgate.obj("configmap", "lockgate-config")
    assert json.loads(head["data"]["index.json"])["encoding"] == "shards"
    before = _versions_of_keys(lockgate)

    _create(lockgate, _key_objects(KEYS + 1)[-2:])  # one more Secret and ApiKey
    lockgate.works(proxy, f"lg-bg{KEYS}-0123456789abcdef0123456789", "served", timeout=30)
    wait_for(lambda: lockgate.condition_is("apikey", f"bg{KEYS}", "Programmed", "True"), 30, "the new key Programmed")
    after = _versions_of_keys(lockgate)
    rewritten = sorted(name for name in before if after[name] != before[name])
    assert rewritten in ([], [f"bg{KEYS - 1}"])  # the key that served a request may show its usage

    # A restarted operator (Kopf's start included) writes no object: at most the usage of the keys that served.
    operator.stop()
    again = lockgate.start_operator()
    found = wait_for(lambda: re.search(r"statuses: (\d+) of (\d+) objects written", again.output()), 90,
                     "the restarted operator's first status pass")
    assert int(found.group(2)) == KEYS + 3 and int(found.group(1)) <= 2  # the provider, the route, KEYS + 1 keys
    assert "configuration" in again.output() and "unchanged" in again.output()
    final = _versions_of_keys(lockgate)
    assert sorted(name for name in final if final[name] != after[name]) in (
        [], [f"bg{KEYS - 1}"], [f"bg{KEYS}"], [f"bg{KEYS - 1}", f"bg{KEYS}"])
