"""Kubernetes Events for condition transitions (core/v1 Events)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from lockgate.operator.status import Transition, rfc3339
from lockgate.common.kube_client import ApiError, KubeApi, resource_path

log = logging.getLogger("lockgate.operator.events")

COMPONENT = "lockgate-operator"


def event_manifest(obj: Mapping[str, Any], reason: str, message: str, warning: bool, now: datetime,
                   instance: str | None = None) -> dict[str, Any]:
    meta = obj["metadata"]
    stamp = rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta["name"],
            "namespace": meta["namespace"], "uid": meta.get("uid"),
        },
        "type": "Warning" if warning else "Normal",
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": f"lockgate.io/{COMPONENT}",
        "reportingInstance": instance or socket.gethostname(),
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def transition_event(obj: Mapping[str, Any], transition: Transition, now: datetime) -> dict[str, Any]:
    return event_manifest(obj, transition.reason or transition.type,
                          f"{transition.type} is {transition.new}: {transition.message}", transition.warning, now)


async def post_event(api: KubeApi, event: Mapping[str, Any]) -> None:
    """Best effort: an Event that cannot be posted is logged, never retried."""
    namespace = event["metadata"]["namespace"]
    try:
        await api.create(resource_path("v1", "events", namespace), event)
    except (ApiError, OSError) as e:
        log.warning("event for %s/%s not posted: %s", namespace, event["involvedObject"]["name"], e)
