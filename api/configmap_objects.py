"""The shapes both ConfigMap layouts share: object shells, keys, base64."""

from __future__ import annotations

import base64
from typing import Any

CONFIG_KEY = "config.json"
GZIP_KEY = "config.json.gz"
INDEX_KEY = "index.json"
PART_KEY = "part"
KEYS_KEY = "keys.json.gz"
CREDENTIALS_KEY = "credentials.json"
HASH_ANNOTATION = "lockgate.io/config-hash"
CREDENTIALS_HASH_ANNOTATION = "lockgate.io/credentials-hash"
MANAGED_LABELS = {"app.kubernetes.io/managed-by": "lockgate", "app.kubernetes.io/part-of": "lockgate"}
CONFIG_SET_LABEL = "lockgate.io/config-set"  # the head's name, on the head and its parts: one label selector lists them

GZIP_ABOVE = 256 * 1024  # bytes of JSON past which the config is compressed
PART_BYTES = 900 * 1024  # a ConfigMap holds at most 1 MiB of data


def config_object(kind: str, name: str, namespace: str, content_hash: str,
                  config_set: str | None = None) -> dict[str, Any]:
    labels = dict(MANAGED_LABELS)
    if config_set is not None:
        labels[CONFIG_SET_LABEL] = config_set
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {HASH_ANNOTATION: content_hash},
        },
    }


def annotated_hash(obj: dict[str, Any]) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION)
    return str(value) if value is not None else None


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)
