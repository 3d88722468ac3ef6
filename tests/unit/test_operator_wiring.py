"""Small pure pieces of the operator's wiring: flags to settings, index
bodies, the inventory a render works from, loopback name resolution."""

from __future__ import annotations

import argparse
import socket

import pytest

from lockgate.cli.main import build_parser
from lockgate.cli.operator_cmd import settings_from
from lockgate.operator.handlers import WATCHED, indexed_objects, slim
from lockgate.operator.reconciler import Inventory
from lockgate.operator.secret_refs import secret_references
from lockgate.operator.translate import ObjectRef
from lockgate.common.resolver import LoopbackNamesResolver, is_loopback_name


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["operator", *argv])


def test_flags_to_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    settings = settings_from(parse("-n", "a", "-n", "b", "--config-map", "sys/cfg", "--peering", "lg"))
    assert settings.namespaces == ("a", "b") and not settings.all_namespaces
    assert (settings.publish_namespace, settings.config_map, settings.peering) == ("sys", "cfg", "lg")
    assert settings_from(parse("-n", "a")).publish_namespace == "a"
    assert settings_from(parse()).all_namespaces
    assert settings_from(parse("--standalone", "--peering", "lg")).peering is None
    priorities = {settings_from(parse("--peering", "lg")).priority for _ in range(20)}
    assert len(priorities) > 1 and min(priorities) >= 1  # replicas rarely tie (a tie pauses both)
    assert settings_from(parse("--priority", "7")).priority == 7


def test_index_bodies_drop_managed_fields_and_know_their_kind() -> None:
    assert "secrets" not in {w.plural for w in WATCHED}, "Kopf would keep every Secret of the cluster"
    assert "apikeys" not in {w.plural for w in WATCHED}, "Kopf's start grows with the square of indexed objects"
    from lockgate.operator.object_watch import beyond_status, slim_object

    raw = {"metadata": {"name": "k", "namespace": "n", "managedFields": [{"x": 1}]}, "spec": {"consumer": "c"}}
    assert slim_object("ApiKey")(raw) == {"metadata": {"name": "k", "namespace": "n"}, "spec": {"consumer": "c"},
                                          "apiVersion": "lockgate.io/v1alpha1", "kind": "ApiKey"}
    key = {"metadata": {"name": "k", "generation": 1, "resourceVersion": "5"}, "spec": {"consumer": "c"}}
    written = {**key, "metadata": {**key["metadata"], "resourceVersion": "6"}, "status": {"usage": {}}}
    assert beyond_status(None, key) and not beyond_status(key, written)  # the operator's own status write
    assert beyond_status(written, {**written, "metadata": {**written["metadata"], "annotations": {"a": "b"}}})
    assert beyond_status(written, {**written, "spec": {"consumer": "d"}})
    services = next(w for w in WATCHED if w.plural == "services")
    body = slim({"metadata": {"name": "s", "namespace": "n", "managedFields": [{"x": 1}]}, "spec": {}}, services)
    assert body == {"metadata": {"name": "s", "namespace": "n"}, "spec": {}, "apiVersion": "v1", "kind": "Service"}
    assert list(indexed_objects({"i": {("n", "s"): [body]}})) == [body]


def test_inventory_sorts_objects_out() -> None:
    objects = [
        {"apiVersion": "lockgate.io/v1alpha1", "kind": "ApiKey", "metadata": {"name": "k", "namespace": "n"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "e", "namespace": "n"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "namespace": "n"}},
    ]
    inventory = Inventory.of(objects)
    assert list(inventory.lockgate) == [ObjectRef("ApiKey", "n", "k")]
    assert list(inventory.secrets) == [("n", "s")] and len(inventory.slices) == 1 and len(inventory.objects) == 4
    assert [k["metadata"]["name"] for k in inventory.apikeys()] == ["k"]


async def test_names_under_localhost_are_loopback() -> None:
    assert is_loopback_name("localhost") and is_loopback_name("Pool-1.LOCALHOST.") and not is_loopback_name("localhost.io")
    resolver = LoopbackNamesResolver()
    try:
        (v4,) = await resolver.resolve("upstream-a.localhost", 8000)
        (v6,) = await resolver.resolve("b.localhost", 1, socket.AF_INET6)
        assert (v4["host"], v4["port"], v6["host"]) == ("127.0.0.1", 8000, "::1")
    finally:
        await resolver.close()


def test_secret_references_are_found_wherever_a_spec_names_one() -> None:
    def obj(kind: str, ns: str, spec: dict) -> dict:
        return {"apiVersion": "lockgate.io/v1alpha1", "kind": kind, "metadata": {"name": "x", "namespace": ns}, "spec": spec}

    objects = [
        obj("ModelProvider", "a", {"credentials": {"secretRef": {"name": "openai", "key": "k"}}}),
        obj("ApiKey", "a", {"secretName": "generated"}),
        obj("ApiKey", "b", {"existingSecret": {"name": "mine", "key": "token"}}),
        obj("MCPServer", "b", {"upstream": {"auth": {"secretRef": {"name": "mcp", "key": "t"}}}}),
        obj("MCPServer", "c", {"tools": [{"request": {"headersFrom": [
            {"name": "X-Key", "valueFrom": {"secretKeyRef": {"name": "tool", "key": "t"}}}]}}]}),
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "unreferenced", "namespace": "a"}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "a"},
         "spec": {"volumes": [{"secret": {"secretName": "not-ours"}}]}},
    ]
    assert secret_references(objects) == {("a", "openai"), ("a", "generated"), ("b", "mine"), ("b", "mcp"), ("c", "tool")}
