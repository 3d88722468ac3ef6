"""Reading a Kubernetes Secret's values (`data` base64, `stringData` plain) and making keys: one way for all."""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from typing import Any

KEY_PREFIX = "lg-"
KEY_BYTES = 32


def generate_key() -> str:
    """`lg-` and 32 random bytes, URL-safe base64 (43 characters)."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def secret_values(secret: Mapping[str, Any] | None) -> dict[str, str]:
    """Every text value of a Secret, decoded; `stringData` (as in files) wins over `data`.
    A value that is not valid base64 or not UTF-8 text is left out: nothing Lockgate can use."""
    values: dict[str, str] = {}
    if not secret:
        return values
    for k, v in (secret.get("data") or {}).items():
        try:
            values[str(k)] = base64.b64decode(str(v), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue
    for k, v in (secret.get("stringData") or {}).items():
        values[str(k)] = str(v)
    return values


def secret_value(secret: Mapping[str, Any] | None, field: str) -> str | None:
    """One value of a Secret, decoded, or None."""
    return secret_values(secret).get(field)
