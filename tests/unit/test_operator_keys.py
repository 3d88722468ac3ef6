"""Generated key Secrets: created once, never regenerated, rotated once per annotation value."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

from lockgate.api.apikey import PREVIOUS_KEY_EXPIRES_ANNOTATION, PREVIOUS_KEY_FIELD, ROTATED_FOR_ANNOTATION
from lockgate.api.ir import hash_key
from lockgate.api.secret_data import generate_key, secret_value
from lockgate.operator.keys import key_action, key_status_fields

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def apikey(annotations: dict[str, str] | None = None, **spec: object) -> dict:
    return {"apiVersion": "lockgate.io/v1alpha1", "kind": "ApiKey",
            "metadata": {"name": "team", "namespace": "ns", "uid": "u-1", "annotations": annotations or {}},
            "spec": {"consumer": "team", "secretName": "team-key", **spec}}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


MARKED = {"app.kubernetes.io/managed-by": "lockgate"}


def test_generated_keys_are_prefixed_long_and_unique() -> None:
    keys = {generate_key() for _ in range(50)}
    assert len(keys) == 50
    assert all(k.startswith("lg-") and len(k) >= 3 + 43 for k in keys)


def test_missing_secret_is_created_owned_by_the_apikey() -> None:
    action = key_action(apikey(), None, NOW, new_key="lg-new")
    assert action is not None and action.create is not None and action.id == "create"
    secret = action.create
    assert secret["metadata"]["name"] == "team-key" and secret["metadata"]["namespace"] == "ns"
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("ApiKey", "team", "u-1", True)
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "lockgate"
    assert key_action(apikey(), secret, NOW) is None, "its own Secret, with a key: nothing to do"
    assert secret_value(secret, "api-key") == "lg-new"


def test_existing_key_is_never_regenerated() -> None:
    secret = {"metadata": {"name": "team-key"}, "data": {"api-key": b64("lg-old")}}
    assert key_action(apikey(), secret, NOW) is None


def test_empty_secret_handed_over_by_its_label_is_filled() -> None:
    secret = {"metadata": {"name": "team-key", "labels": MARKED}, "data": {}}
    action = key_action(apikey(), secret, NOW, new_key="lg-x")
    assert action is not None and action.patch == {"data": {"api-key": b64("lg-x")}}


def test_an_unmarked_secret_is_never_written() -> None:
    key = apikey({"lockgate.io/rotate": "now"})
    assert key_action(key, {"metadata": {"name": "team-key"}, "data": {}}, NOW) is None
    assert key_action(key, {"metadata": {"name": "team-key", "labels": {"app.kubernetes.io/managed-by": "Helm"}},
                            "data": {"api-key": b64("lg-theirs")}}, NOW) is None


def test_a_secret_of_another_apikey_is_never_written_even_when_marked() -> None:
    theirs = {"apiVersion": "lockgate.io/v1alpha1", "kind": "ApiKey", "name": "other", "uid": "u-2", "controller": True}
    secret = {"metadata": {"name": "team-key", "labels": MARKED, "ownerReferences": [theirs]}, "data": {}}
    assert key_action(apikey({"lockgate.io/rotate": "now"}), secret, NOW) is None
    ours = {**theirs, "name": "team", "uid": "u-1"}
    secret["metadata"]["ownerReferences"] = [ours]
    assert key_action(apikey(), secret, NOW) is not None


def test_rotation_moves_old_key_with_grace_and_happens_once_per_value() -> None:
    secret = {"metadata": {"name": "team-key", "annotations": {}, "labels": MARKED}, "data": {"api-key": b64("lg-old")}}
    key = apikey({"lockgate.io/rotate": "2026-03-01"}, rotationGrace="30m")
    action = key_action(key, secret, NOW, new_key="lg-new")
    assert action is not None and action.patch is not None and action.id == "rotate:2026-03-01"
    assert action.patch["data"] == {"api-key": b64("lg-new"), PREVIOUS_KEY_FIELD: b64("lg-old")}
    annotations = action.patch["metadata"]["annotations"]
    assert annotations[PREVIOUS_KEY_EXPIRES_ANNOTATION] == "2026-03-01T12:30:00Z"
    rotated = {"metadata": {"name": "team-key", "annotations": annotations, "labels": MARKED},
               "data": action.patch["data"]}
    assert key_action(key, rotated, NOW) is None


def test_rotate_annotation_present_at_creation_does_not_rotate_later() -> None:
    key = apikey({"lockgate.io/rotate": "v1"})
    action = key_action(key, None, NOW, new_key="lg-a")
    assert action is not None and action.create is not None
    assert action.create["metadata"]["annotations"][ROTATED_FOR_ANNOTATION] == "v1"
    assert key_action(key, action.create, NOW) is None


def test_existing_secret_keys_are_left_alone() -> None:
    key = apikey()
    del key["spec"]["secretName"]
    key["spec"]["existingSecret"] = {"name": "mine", "key": "token"}
    assert key_action(key, None, NOW) is None
    fields = key_status_fields(key, {"mine": {"data": {"token": b64("lg-mine")}}})
    assert fields["secretName"] == "mine" and fields["keyHashPrefix"] == hash_key("lg-mine")[:12]


def test_an_mcpservers_gateway_key_is_generated_into_a_secret_the_server_owns() -> None:
    from lockgate.api.gateway_key import gateway_apikey
    from lockgate.operator.reconciler import Inventory

    server = {"apiVersion": "lockgate.io/v1alpha1", "kind": "MCPServer",
              "metadata": {"name": "weather", "namespace": "ns", "uid": "u-9", "generation": 3},
              "spec": {"path": "/weather", "upstream": {"url": "http://127.0.0.1:1/mcp"},
                       "gatewayKey": {"secretName": "weather-llm", "models": ["small"]}}}
    shaped = gateway_apikey(server)
    assert shaped is not None and shaped["spec"]["consumer"] == "mcp-weather"
    action = key_action(shaped, None, NOW, new_key="lg-gateway-key")
    assert action is not None and action.create is not None and action.reason == "KeyGenerated"
    secret = action.create
    assert secret["metadata"]["name"] == "weather-llm"
    assert secret["metadata"]["ownerReferences"] == [{"apiVersion": "lockgate.io/v1alpha1", "kind": "MCPServer",
                                                       "name": "weather", "uid": "u-9", "controller": True}]
    assert secret["metadata"]["labels"]["lockgate.io/mcpserver"] == "weather"
    assert secret_value(secret, "api-key") == "lg-gateway-key"
    # generated once: a Secret that holds the key is left alone
    assert key_action(shaped, secret, NOW) is None
    # the operator's loop sees it among the keys to keep; a server without one adds nothing
    bare = {**server, "metadata": {**server["metadata"], "name": "plain"}, "spec": {"path": "/p"}}
    inventory = Inventory.of([server, bare, apikey()])
    assert [k["metadata"]["name"] for k in inventory.apikeys()] == ["team", "weather"]
    assert gateway_apikey(bare) is None
