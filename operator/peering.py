"""Which operator replica is active, from Kopf's peering object.

Kopf pauses its watches on a replica that sees a live peer of higher (or
equal) priority, but the reconciler is our own task: it asks the same peering
object, with the same rule, before it publishes anything, so a standby
replica never writes from its stale indexes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from lockgate.common.kube_client import ApiError, KubeApi, resource_path

log = logging.getLogger("lockgate.operator.peering")


def _parse(moment: str | None) -> datetime | None:
    if not moment:
        return None
    try:
        parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def is_active(peers: Mapping[str, Any], me: str, priority: int, now: datetime) -> bool:
    """Kopf's rule: pause while another live peer has a priority >= ours."""
    for identity, info in peers.items():
        if identity == me or not isinstance(info, Mapping):
            continue
        lastseen = _parse(info.get("lastseen"))
        if lastseen is None or lastseen + timedelta(seconds=int(info.get("lifetime", 60))) <= now:
            continue  # dead
        if int(info.get("priority", 0)) >= priority:
            return False
    return True


class PeeringGate:
    """Reads the peering object at most every `interval` seconds."""

    def __init__(self, api: KubeApi, name: str, namespace: str | None, identity: str, priority: int,
                 interval: float = 1.0) -> None:
        plural = "clusterkopfpeerings" if namespace is None else "kopfpeerings"
        self.path = resource_path("kopf.dev/v1", plural, namespace, name)
        self.api, self.identity, self.priority, self.interval = api, identity, priority, interval
        self._checked = float("-inf")
        self._active = False

    async def active(self) -> bool:
        if time.monotonic() - self._checked < self.interval:
            return self._active
        try:
            body = await self.api.get(self.path)
        except (ApiError, OSError) as e:
            log.warning("peering object not readable (%s); staying %s", e, "active" if self._active else "standby")
            return self._active
        self._checked = time.monotonic()
        now = datetime.now(timezone.utc)
        active = body is not None and is_active(body.get("status") or {}, self.identity, self.priority, now)
        if active != self._active:
            log.info("this operator is now %s", "active" if active else "on standby")
        self._active = active
        return active
