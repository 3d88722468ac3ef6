"""Secrets an install needs that nobody should write by hand: the proxies'
MCP session-signing key, the bundled Redis password.

The chart cannot generate them without Helm's `lookup` (which GitOps tools do
not run, so every sync would render a new value). The operator creates each
one when it is absent, and never changes a value that exists: a Secret that
lacks only the key gets that key added, nothing else. Checked at start and at
every resync, so a deleted Secret comes back.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lockgate.common.kube_client import ApiError, KubeApi, resource_path

log = logging.getLogger("lockgate.operator.generated")

VALUE_BYTES = 36  # 48 URL-safe characters: safe in a redis:// URL as they are
GENERATED_BY = {"app.kubernetes.io/managed-by": "lockgate", "lockgate.io/generated": "true"}


@dataclass(frozen=True)
class GeneratedSecret:
    name: str
    key: str

    @classmethod
    def parse(cls, text: str) -> GeneratedSecret:
        """`NAME/KEY`."""
        name, _, key = text.partition("/")
        if not name or not key:
            raise ValueError(f"a generated secret is NAME/KEY, not {text!r}")
        return cls(name, key)


def new_value() -> str:
    return secrets.token_urlsafe(VALUE_BYTES)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret_action(wanted: GeneratedSecret, namespace: str, existing: Mapping[str, Any] | None,
                  value: str) -> tuple[str, dict[str, Any]] | None:
    """("create", manifest), ("patch", merge patch) or None when the Secret holds the key already."""
    if existing is None:
        return "create", {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": wanted.name, "namespace": namespace, "labels": dict(GENERATED_BY)},
            "data": {wanted.key: _b64(value)},
        }
    if (existing.get("data") or {}).get(wanted.key):
        return None
    return "patch", {"data": {wanted.key: _b64(value)}}


async def ensure_generated(api: KubeApi, namespace: str, wanted: Iterable[GeneratedSecret]) -> list[str]:
    """Create what is missing; the names of the Secrets written. A failure is logged and retried
    at the next resync; it never stops the reconcile."""
    written = []
    for item in wanted:
        path = resource_path("v1", "secrets", namespace, item.name)
        try:
            action = secret_action(item, namespace, await api.get(path), new_value())
            if action is None:
                continue
            if action[0] == "create":
                await api.create(resource_path("v1", "secrets", namespace), action[1])
            else:
                await api.patch(path, action[1])
        except ApiError as e:
            if e.status != 409:  # 409: another operator replica created it meanwhile
                log.warning("generated Secret %s/%s not written: %s", namespace, item.name, e)
            continue
        log.info("generated Secret %s/%s: key %s created", namespace, item.name, item.key)
        written.append(item.name)
    return written
