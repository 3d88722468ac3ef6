"""Client-visible session ids: signed, so any gateway replica can route them.

A legacy (2025-11-25 and earlier) session lives on one upstream endpoint. The
id the client sees carries that endpoint, the upstream's own session id and
the key that opened it, with an HMAC over all three under a key every replica
shares, so a client cannot forge one or use another key's session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass

_PREFIX = "lg1."


@dataclass(frozen=True)
class SessionRef:
    server: str  # McpServer id
    key_id: str  # ConsumerKey id that opened the session
    upstream_url: str = ""  # "" for sessions the gateway serves itself
    upstream_session: str = ""
    client_samples: bool = True  # the client declared the sampling capability (older ids: assumed)


def session_key(secret: str | None = None) -> bytes:
    """The signing key: the given secret (`McpSettings.session_secret`), else a per-process random one.

    A random key suits one standalone process; replicas must share a secret.
    """
    if secret:
        return hashlib.sha256(b"lockgate-mcp-session:" + secret.encode()).digest()
    return os.urandom(32)


class SessionSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def encode(self, ref: SessionRef) -> str:
        fields: list[str | int] = [ref.server, ref.key_id, ref.upstream_url, ref.upstream_session]
        if not ref.client_samples:
            fields.append(0)
        return self.seal(fields)

    def seal(self, value: object) -> str:
        """`value` (JSON) in a signed token: readable, but not alterable, by whoever holds it."""
        payload = _b64(json.dumps(value, separators=(",", ":")).encode())
        return f"{_PREFIX}{payload}.{self._sign(payload)}"

    def open(self, token: str) -> object | None:
        """The value a token of `seal` holds, or None when it is malformed or not ours."""
        if not token.startswith(_PREFIX) or not token.isascii():  # ours are ASCII; others cannot be compared
            return None
        payload, _, signature = token[len(_PREFIX):].partition(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            value: object = json.loads(_unb64(payload))
        except (ValueError, TypeError):
            return None
        return value

    def decode(self, token: str) -> SessionRef | None:
        """The session a token names, or None when it is malformed or not ours."""
        fields = self.open(token)
        if not isinstance(fields, list) or len(fields) not in (4, 5):
            return None
        server, key_id, url, upstream = fields[:4]
        return SessionRef(str(server), str(key_id), str(url), str(upstream), len(fields) == 4)

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest()[:18])


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
