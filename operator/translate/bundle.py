"""Collect raw manifests into what the translator looks things up in:
Secrets (decoded), Services, EndpointSlices per Service, and the Lockgate
resources in a stable order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lockgate.api.meta import GROUP
from lockgate.api.secret_data import secret_values

LOCKGATE_KINDS = ("ModelProvider", "ApiKey", "Route", "MCPServer", "Budget")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True)
class SecretData:
    values: dict[str, str]
    annotations: dict[str, str]
    labels: dict[str, str] = field(default_factory=dict)
    owner_references: tuple[Mapping[str, Any], ...] = ()


@dataclass
class Bundle:
    secrets: dict[tuple[str, str], SecretData] = field(default_factory=dict)
    services: dict[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    slices: dict[tuple[str, str], list[Mapping[str, Any]]] = field(default_factory=dict)
    # kind -> raw objects, sorted by namespace/name
    resources: dict[str, list[Mapping[str, Any]]] = field(default_factory=dict)

    def secret(self, namespace: str, name: str) -> SecretData | None:
        return self.secrets.get((namespace, name))


def namespace_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "default")


def name_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


SecretMemo = dict[tuple[str, str], tuple[object, SecretData]]


def collect(objects: Iterable[Mapping[str, Any]], secrets: SecretMemo | None = None,
            seen_secrets: set[tuple[str, str]] | None = None) -> Bundle:
    """`secrets`: Secrets decoded by an earlier pass, by namespace/name with their identity (reused when
    unchanged, updated); `seen_secrets` collects the namespace/names met."""
    bundle = Bundle(resources={k: [] for k in LOCKGATE_KINDS})
    for obj in objects:
        if not isinstance(obj, Mapping):
            continue
        kind = obj.get("kind")
        api_version = str(obj.get("apiVersion") or "")
        key = (namespace_of(obj), name_of(obj))
        if kind in LOCKGATE_KINDS and api_version.startswith(f"{GROUP}/"):
            if not (obj.get("metadata") or {}).get("deletionTimestamp"):  # on its way out: serve it no more
                bundle.resources[str(kind)].append(obj)
        elif kind == "Secret" and api_version == "v1":
            bundle.secrets[key] = _secret(obj) if secrets is None else _remembered_secret(obj, key, secrets)
            if seen_secrets is not None:
                seen_secrets.add(key)
        elif kind == "Service" and api_version == "v1":
            bundle.services[key] = obj
        elif kind == "EndpointSlice" and api_version.startswith("discovery.k8s.io/"):
            service = ((obj.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
            if service:
                bundle.slices.setdefault((key[0], str(service)), []).append(obj)
    for items in bundle.resources.values():
        items.sort(key=lambda o: (namespace_of(o), name_of(o)))
    return bundle


def _remembered_secret(obj: Mapping[str, Any], key: tuple[str, str], memo: SecretMemo) -> SecretData:
    token = identity(obj)
    known = memo.get(key)
    if known is not None and known[0] == token:
        return known[1]
    data = _secret(obj)
    memo[key] = (token, data)
    return data


def identity(raw: Mapping[str, Any]) -> object:
    """What says an object did not change: its uid and resourceVersion, else the object itself (by value)."""
    meta = raw.get("metadata") or {}
    uid, version = meta.get("uid"), meta.get("resourceVersion")
    if uid and version:
        return (str(uid), str(version))
    return raw


def _secret(obj: Mapping[str, Any]) -> SecretData:
    meta = obj.get("metadata") or {}
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    owners = tuple(o for o in meta.get("ownerReferences") or [] if isinstance(o, Mapping))
    return SecretData(values=secret_values(obj), annotations=annotations, labels=labels, owner_references=owners)
