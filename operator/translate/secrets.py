"""Secret references: a value, or a rejection a person can act on."""

from __future__ import annotations

from lockgate.api.meta import SecretKeyRef
from lockgate.operator.translate.bundle import Bundle
from lockgate.operator.translate.conditions import Rejected


def secret_value(bundle: Bundle, namespace: str, ref: SecretKeyRef, what: str) -> str:
    secret = bundle.secret(namespace, ref.name)
    if secret is None:
        raise Rejected("SecretNotFound", f"{what}: Secret {namespace}/{ref.name} not found; create it with key {ref.key!r}")
    value = secret.values.get(ref.key)
    if not value:
        keys = ", ".join(sorted(secret.values)) or "none"
        raise Rejected(
            "SecretNotFound", f"{what}: Secret {namespace}/{ref.name} has no key {ref.key!r} (keys present: {keys})"
        )
    return value
