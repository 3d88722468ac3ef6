"""Creating and rotating generated ApiKey Secrets (the I/O around keys.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from lockgate.operator.events import event_manifest, post_event
from lockgate.api.apikey import GENERATED_KEY_FIELD
from lockgate.operator.keys import key_action, secret_value
from lockgate.common.kube_client import ApiError, KubeApi, resource_path

log = logging.getLogger("lockgate.operator.keys")


class KeySecrets:
    """Ensures every ApiKey with `secretName` has its key, exactly once.

    The operator's view of Secrets lags its own writes by one watch event;
    actions already taken are remembered so a stale view never generates or
    rotates twice."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self._done: set[tuple[str, str, str]] = set()  # (namespace, secret, action id)
        self._fine: dict[tuple[str, str], tuple[str, str]] = {}  # ApiKey -> versions of it and its Secret found fine

    async def ensure(self, apikeys: Iterable[Mapping[str, Any]],
                     secrets: Mapping[tuple[str, str], Mapping[str, Any]], now: datetime) -> bool:
        """True when a Secret was written (its watch event triggers a re-render)."""
        wrote = False
        seen: set[tuple[str, str]] = set()
        for apikey in apikeys:
            meta, spec = apikey["metadata"], apikey.get("spec") or {}
            name = spec.get("secretName")
            if not name:
                continue
            ns = meta["namespace"]
            secret = secrets.get((ns, name))
            at, versions = (ns, meta.get("name", "")), _versions(apikey, secret)
            seen.add(at)
            if versions is not None and self._fine.get(at) == versions:
                continue  # neither changed since its Secret was found as it should be
            action = key_action(apikey, secret, now)
            if action is None and versions is not None:
                self._fine[at] = versions
            if secret is not None:
                self._done.discard((ns, name, "create"))
            if secret_value(secret, GENERATED_KEY_FIELD):
                self._done.discard((ns, name, "fill"))
            if action is None:
                continue
            marker = (ns, name, action.id)
            if marker in self._done:
                continue
            try:
                if action.create is not None:
                    await self.api.create(resource_path("v1", "secrets", ns), action.create)
                else:
                    await self.api.patch(resource_path("v1", "secrets", ns, name), action.patch)
            except ApiError as e:
                if e.status == 409:  # created meanwhile; the watch will show it
                    continue
                log.warning("key Secret %s/%s not written: %s", ns, name, e)
                continue
            self._done.add(marker)
            wrote = True
            message = "Rotated the key; the previous one works until its grace period ends" \
                if action.reason == "KeyRotated" else f"Generated a key into Secret {name}"
            log.info("%s/%s: %s", ns, meta["name"], message)
            await post_event(self.api, event_manifest(apikey, action.reason, message, False, now))
        self._fine = {k: v for k, v in self._fine.items() if k in seen}
        return wrote


def _versions(apikey: Mapping[str, Any], secret: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """The resourceVersions of an ApiKey and its Secret, or None when one is not known."""
    own = (apikey.get("metadata") or {}).get("resourceVersion")
    theirs = ((secret or {}).get("metadata") or {}).get("resourceVersion")
    return (str(own), str(theirs)) if own and theirs else None
