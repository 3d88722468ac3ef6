"""Generated ApiKey Secrets: pure decisions and manifests.

A key is generated once into the Secret `spec.secretName` (data `api-key`)
and never regenerated while that Secret holds one. Lockgate writes only into a
Secret it creates (labelled app.kubernetes.io/managed-by=lockgate and owned by
the ApiKey) or one a person labelled so; any other existing Secret is left
alone and the ApiKey's status says why (see `key_secret_problem`). Setting the annotation
`lockgate.io/rotate` on the ApiKey to a new value rotates it: the old key moves
to `previous-api-key` and keeps working until the Secret's annotation
`lockgate.io/previous-key-expires` (now + spec.rotationGrace). The rotate value
handled last is remembered on the Secret, so a rotation happens once per value.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from lockgate.api.apikey import (
    GENERATED_KEY_FIELD, MANAGED_LABEL, MANAGED_VALUE, PREVIOUS_KEY_EXPIRES_ANNOTATION, PREVIOUS_KEY_FIELD,
    ROTATE_ANNOTATION, ROTATED_FOR_ANNOTATION, key_secret_problem,
)
from lockgate.api.duration import parse_duration
from lockgate.api.ir import hash_key
from lockgate.api.secret_data import generate_key, secret_value
from lockgate.operator.status import rfc3339

ROTATED_AT_ANNOTATION = "lockgate.io/rotated-at"
MANAGED_BY = {MANAGED_LABEL: MANAGED_VALUE}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def owner_reference(apikey: Mapping[str, Any]) -> dict[str, Any]:
    meta = apikey["metadata"]
    # No blockOwnerDeletion: with OwnerReferencesPermissionEnforcement it would
    # need update rights on apikeys/finalizers, and nothing waits on the key.
    return {"apiVersion": apikey.get("apiVersion", "lockgate.io/v1alpha1"), "kind": apikey.get("kind", "ApiKey"),
            "name": meta["name"], "uid": meta["uid"], "controller": True}


def new_key_secret(apikey: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The Secret holding a freshly generated key, owned by the ApiKey."""
    meta = apikey["metadata"]
    annotations = {}
    rotate = (meta.get("annotations") or {}).get(ROTATE_ANNOTATION)
    if rotate:  # already asked for at creation: nothing left to rotate
        annotations[ROTATED_FOR_ANNOTATION] = rotate
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": apikey["spec"]["secretName"],
            "namespace": meta["namespace"],
            "labels": {**MANAGED_BY, f"lockgate.io/{str(apikey.get('kind', 'ApiKey')).lower()}": meta["name"]},
            "annotations": annotations,
            "ownerReferences": [owner_reference(apikey)],
        },
        "data": {GENERATED_KEY_FIELD: _b64(key)},
    }


@dataclass(frozen=True)
class KeyAction:
    """What to do with an ApiKey's generated Secret: create it, or patch it."""

    create: dict[str, Any] | None = None
    patch: dict[str, Any] | None = None
    reason: str = ""
    id: str = ""  # "create", "fill" or "rotate:<value>": the same action is taken once


def key_action(apikey: Mapping[str, Any], secret: Mapping[str, Any] | None, now: datetime,
               new_key: str | None = None) -> KeyAction | None:
    """None when the Secret is as it should be. `new_key` is for tests."""
    spec = apikey.get("spec") or {}
    if not spec.get("secretName") or not (apikey.get("metadata") or {}).get("uid"):
        return None  # existingSecret: the user owns the key
    if secret is None:
        return KeyAction(create=new_key_secret(apikey, new_key or generate_key()), reason="KeyGenerated", id="create")
    meta, secret_meta = apikey["metadata"], secret.get("metadata") or {}
    if key_secret_problem(meta.get("namespace", ""), spec["secretName"], secret_meta.get("labels") or {},
                          secret_meta.get("ownerReferences") or [], meta.get("name", ""), meta.get("uid")):
        return None  # not ours to write: the translator puts the reason on the ApiKey
    current = secret_value(secret, GENERATED_KEY_FIELD)
    if not current:  # a Secret handed over with no key yet: fill it, keep everything else
        return KeyAction(patch={"data": {GENERATED_KEY_FIELD: _b64(new_key or generate_key())}},
                         reason="KeyGenerated", id="fill")
    rotate = ((apikey.get("metadata") or {}).get("annotations") or {}).get(ROTATE_ANNOTATION)
    handled = ((secret.get("metadata") or {}).get("annotations") or {}).get(ROTATED_FOR_ANNOTATION)
    if rotate and rotate != handled:
        grace = parse_duration(spec.get("rotationGrace") or "1h")
        return KeyAction(
            patch={
                "metadata": {"annotations": {
                    ROTATED_FOR_ANNOTATION: rotate,
                    ROTATED_AT_ANNOTATION: rfc3339(now),
                    PREVIOUS_KEY_EXPIRES_ANNOTATION: rfc3339(now + timedelta(seconds=grace)),
                }},
                "data": {GENERATED_KEY_FIELD: _b64(new_key or generate_key()), PREVIOUS_KEY_FIELD: _b64(current)},
            },
            reason="KeyRotated",
            id=f"rotate:{rotate}",
        )
    return None


def key_status_fields(apikey: Mapping[str, Any], secrets_by_name: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """secretName, keyHashPrefix and rotatedAt for the ApiKey's status."""
    spec = apikey.get("spec") or {}
    name = spec.get("secretName") or (spec.get("existingSecret") or {}).get("name")
    field = GENERATED_KEY_FIELD if spec.get("secretName") else (spec.get("existingSecret") or {}).get("key", "")
    secret = secrets_by_name.get(name or "")
    key = secret_value(secret, field)
    rotated_at = ((secret or {}).get("metadata", {}).get("annotations") or {}).get(ROTATED_AT_ANNOTATION)
    return {"secretName": name, "keyHashPrefix": hash_key(key)[:12] if key else None, "rotatedAt": rotated_at}
