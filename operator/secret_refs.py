"""Which Secrets the Lockgate resources name: pure, so the operator reads
those and no others."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

LOCKGATE_GROUP = "lockgate.io/"
# A reference to a Secret anywhere in a spec: `secretRef`, `secretKeyRef` and
# `existingSecret` objects name one, and so does a `secretName` string.
REF_FIELDS = ("secretRef", "secretKeyRef", "existingSecret")
NAME_FIELDS = ("secretName",)

SecretKey = tuple[str, str]  # (namespace, name)


def secret_references(objects: Iterable[Mapping[str, Any]]) -> set[SecretKey]:
    """Every Secret a Lockgate resource among `objects` names, in its namespace
    (or the namespace a reference spells out)."""
    found: set[SecretKey] = set()
    for obj in objects:
        if not str(obj.get("apiVersion", "")).startswith(LOCKGATE_GROUP):
            continue
        namespace = str((obj.get("metadata") or {}).get("namespace") or "default")
        _walk(obj.get("spec"), namespace, found)
    return found


def _walk(node: Any, namespace: str, found: set[SecretKey]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, namespace, found)
        return
    if not isinstance(node, Mapping):
        return
    for key, value in node.items():
        if key in REF_FIELDS and isinstance(value, Mapping) and isinstance(value.get("name"), str):
            found.add((str(value.get("namespace") or namespace), value["name"]))
        elif key in NAME_FIELDS and isinstance(value, str) and value:
            found.add((namespace, value))
        else:
            _walk(value, namespace, found)
