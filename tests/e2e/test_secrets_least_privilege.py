"""Secrets with least privilege, on a real kube-apiserver: the operator holds
only the Secrets resources name and its own, learns of other Secrets' changes
from metadata alone, and writes a key only into a Secret it made or one
handed over to it with the label app.kubernetes.io/managed-by=lockgate."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import yaml

from lockgate.common.kube_client import METADATA, METADATA_LIST, KubeApi, resource_path
from lockgate.operator.secret_store import SecretStore
from tests.e2e.lockgate_env import Lockgate, apikey, crds, lockgate, wait_for  # noqa: F401  (fixtures)
from tests.kube.controlplane import ControlPlane

MANAGED = {"app.kubernetes.io/managed-by": "lockgate"}


def _secret(name: str, labels: dict[str, str] | None = None, type_: str = "Opaque", **values: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": type_,
            "metadata": {"name": name, "labels": labels or {}}, "stringData": values}


def _value(secret: dict[str, Any] | None, key: str) -> str | None:
    raw = ((secret or {}).get("data") or {}).get(key)
    return base64.b64decode(raw).decode() if raw else None


async def _until(check: Callable[[], bool], changed: asyncio.Event, what: str, timeout: float = 15) -> None:
    async def loop() -> None:
        while not check():
            await changed.wait()
            changed.clear()
    try:
        await asyncio.wait_for(loop(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_the_store_holds_only_named_and_own_secrets(crds: ControlPlane, namespace: str) -> None:
    ns = namespace
    others = [_secret(f"unrelated-{i}", password=f"not-lockgate-{i}") for i in range(20)]
    crds.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all([
        *others, _secret("openai", token="sk-1"), _secret("own-key", MANAGED, **{"api-key": "lg-own"}),
        _secret("release", type_="helm.sh/release.v1", release="big"),
    ]))
    api = KubeApi.from_kubeconfig(str(crds.kubeconfig))
    changed = asyncio.Event()
    store = SecretStore(api, (ns,), changed.set)
    task = asyncio.create_task(store.run())
    try:
        wanted = {(ns, "openai"), (ns, "later")}
        held = await asyncio.wait_for(store.resolve(wanted), 20)
        assert set(held) == {(ns, "openai"), (ns, "own-key")}
        assert _value(held[(ns, "openai")], "token") == "sk-1"
        assert set(store.own) == {(ns, "own-key")} and set(store.named) == wanted
        assert store.named[(ns, "later")] is None, "a named Secret that does not exist is remembered as absent"

        # Changes to Secrets nobody names come first in the one ordered stream;
        # by the time the named one arrives they were seen and dropped.
        for other in others[:5]:
            crds.kubectl("annotate", "-n", ns, "secret", other["metadata"]["name"], "touched=yes")
        crds.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(_secret("later", token="t-1")))
        await _until(lambda: (ns, "later") not in store.named, changed, "the named Secret's creation")
        held = await store.resolve(wanted)
        assert _value(held[(ns, "later")], "token") == "t-1"
        assert set(store._changes) <= wanted and set(store.named) <= wanted

        crds.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(_secret("openai", token="sk-2")))
        await _until(lambda: (ns, "openai") not in store.named, changed, "the credential's change")
        assert _value((await store.resolve(wanted))[(ns, "openai")], "token") == "sk-2"

        # Handing a Secret over moves it to the labelled watch; nobody naming it frees it.
        crds.kubectl("label", "-n", ns, "secret", "unrelated-0", "app.kubernetes.io/managed-by=lockgate")
        await _until(lambda: (ns, "unrelated-0") in store.own, changed, "the handed-over Secret")
        held = await store.resolve(set())
        assert set(held) == {(ns, "own-key"), (ns, "unrelated-0")} and store.named == {}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await api.close()


async def test_the_metadata_watch_carries_no_secret_data(crds: ControlPlane, namespace: str) -> None:
    """What the operator's change feed receives for a Secret it does not name."""
    # Created without client-side apply, whose last-applied annotation would copy the data into metadata.
    crds.kubectl("create", "secret", "generic", "plain", "-n", namespace, "--from-literal=password=hunter2")
    api = KubeApi.from_kubeconfig(str(crds.kubeconfig))
    path = resource_path("v1", "secrets", namespace)
    try:
        listing = await api.request("GET", path, params={"limit": "1"}, accept=METADATA_LIST)
        assert listing["kind"] == "PartialObjectMetadataList"
        assert "data" not in listing["items"][0] and "aHVudGVyMg" not in json.dumps(listing)
        version = listing["metadata"]["resourceVersion"]
        crds.kubectl("patch", "secret", "plain", "-n", namespace, "-p", json.dumps({"stringData": {"password": "hunter3"}}))

        async def first_event() -> dict[str, Any]:
            async for event in api.watch(path, version, accept=METADATA, timeout_seconds=10):
                if event["type"] != "BOOKMARK":
                    return dict(event)
            raise AssertionError("no event")

        event = await asyncio.wait_for(first_event(), 15)
        assert event["object"]["kind"] == "PartialObjectMetadata" and event["object"]["metadata"]["name"] == "plain"
        text = json.dumps(event)
        assert "data" not in event["object"] and "aHVudGVyMw" not in text and "hunter3" not in text
    finally:
        await api.close()


def test_keys_go_only_into_secrets_lockgate_made_or_was_handed(lockgate: Lockgate) -> None:
    lockgate.start_operator()
    lockgate.apply_objects([
        _secret("search-team-key", note="made by hand"),
        apikey("search-team", secret="search-team-key"),
        apikey("fresh"),
    ])
    refused = wait_for(lambda: lockgate.condition_is("apikey", "search-team", "Ready", "False"), 30, "SecretNotManaged")
    assert refused["reason"] == "SecretNotManaged"
    assert "label it app.kubernetes.io/managed-by=lockgate" in refused["message"], refused
    made = wait_for(lambda: lockgate.get("secret", "fresh-key"), 30, "the generated Secret")
    assert made["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "lockgate"
    (owner,) = made["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("ApiKey", "fresh")
    wait_for(lambda: lockgate.condition_is("apikey", "fresh", "Ready", "True"), 30, "the fresh key Ready")
    untouched = lockgate.obj("secret", "search-team-key")
    assert set(untouched["data"]) == {"note"}, "nothing was written into the unmarked Secret"

    # The hand-over, as docs/operator.md shows it.
    lockgate.kubectl("label", "secret", "search-team-key", "app.kubernetes.io/managed-by=lockgate")
    key = wait_for(lambda: lockgate.secret_value("search-team-key"), 30, "the key in the handed-over Secret")
    assert key.startswith("lg-") and lockgate.secret_value("search-team-key", "note") == "made by hand"
    wait_for(lambda: lockgate.condition_is("apikey", "search-team", "Ready", "True"), 30, "search-team Ready")
    output = lockgate.processes[0].output()
    assert key not in output and "not-lockgate" not in output


def test_tool_headers_from_a_secret_reach_only_the_credentials_secret(lockgate: Lockgate) -> None:
    lockgate.start_operator()
    server = {"apiVersion": "lockgate.io/v1alpha1", "kind": "MCPServer", "metadata": {"name": "weather"},
              "spec": {"path": "/weather", "tools": [{"name": "forecast", "request": {
                  "url": "https://weather.example.com/forecast",
                  "headersFrom": [{"name": "X-Api-Key", "valueFrom": {"secretKeyRef": {"name": "weather-api",
                                                                                       "key": "token"}}}]}}]}}
    lockgate.apply_objects([server])
    missing = wait_for(lambda: lockgate.condition_is("mcpserver", "weather", "Accepted", "False"), 30, "SecretNotFound")
    assert missing["reason"] == "SecretNotFound" and "weather-api" in missing["message"]

    lockgate.apply_objects([_secret("weather-api", token="wx-first")])
    wait_for(lambda: lockgate.condition_is("mcpserver", "weather", "Accepted", "True"), 30, "accepted once it exists")
    credential = f"mcp/{lockgate.namespace}/weather/tools/forecast/headers/x-api-key"

    def published(value: str) -> bool:
        values = json.loads(lockgate.secret_value("lockgate-credentials", "credentials.json") or "{}")
        return bool(values.get(credential) == value)

    wait_for(lambda: published("wx-first"), 30, "the header value in the credentials Secret")
    lockgate.apply_objects([_secret("weather-api", token="wx-second")])
    wait_for(lambda: published("wx-second"), 30, "the rotated header value")
    config = json.dumps(lockgate.obj("configmap", "lockgate-config"))
    assert "wx-first" not in config and "wx-second" not in config and "X-Api-Key" in config
