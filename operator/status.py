"""Status of Lockgate objects as the operator writes it: pure functions.

The translator decides Accepted, ResolvedRefs and Ready and the kind's status
fields; the operator adds Programmed (see `programmed.py`) and, for ApiKeys,
Expired, Exhausted and usage (see `usage.py`). These functions merge that into
the object's current status the way Kubernetes expects conditions to behave:
`lastTransitionTime` moves only when a condition's status changes, conditions
of types the operator does not own are kept, and a status equal to the current
one produces no write at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from lockgate.api.meta import Condition

OWNED_CONDITIONS = ("Accepted", "ResolvedRefs", "Ready", "Programmed", "Expired", "Exhausted")


def rfc3339(moment: datetime) -> str:
    """Kubernetes' timestamp form: UTC, seconds, `Z`."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition_dict(cond: Condition) -> dict[str, Any]:
    return cond.model_dump(by_alias=True, exclude_none=True, mode="json")


def merge_conditions(current: Iterable[Mapping[str, Any]], desired: Iterable[Condition],
                     generation: int | None, now: datetime) -> list[dict[str, Any]]:
    """The new conditions list: desired conditions (with observedGeneration and
    a kept or fresh lastTransitionTime), plus current ones of foreign types."""
    by_type = {c.get("type"): c for c in current}
    merged: list[dict[str, Any]] = []
    seen: set[str] = set()
    for cond in desired:
        seen.add(cond.type)
        new = condition_dict(cond)
        if generation is not None:
            new["observedGeneration"] = generation
        old = by_type.get(cond.type)
        if old is not None and old.get("status") == cond.status and old.get("lastTransitionTime"):
            new["lastTransitionTime"] = old["lastTransitionTime"]
        else:
            new["lastTransitionTime"] = rfc3339(now)
        merged.append(new)
    for cond_type, old in by_type.items():
        if cond_type not in seen and cond_type not in OWNED_CONDITIONS:
            merged.append(dict(old))
    return merged


def desired_status(current: Mapping[str, Any] | None, conditions: Iterable[Condition], fields: Mapping[str, Any],
                   generation: int | None, now: datetime) -> dict[str, Any]:
    """The whole status the operator wants on an object."""
    current = current or {}
    status: dict[str, Any] = {k: v for k, v in current.items() if k not in ("conditions", "observedGeneration")}
    status.update(fields)
    if generation is not None:
        status["observedGeneration"] = generation
    status["conditions"] = merge_conditions(current.get("conditions") or [], conditions, generation, now)
    return {k: v for k, v in status.items() if v is not None}


def status_patch(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch body (`{"status": ...}`) turning current into desired, or
    None when they are equal. Keys present now but absent from desired are
    removed (null in a merge patch)."""
    current = current or {}
    if _normalised(current) == _normalised(desired):
        return None
    body: dict[str, Any] = dict(desired)
    for key in current:
        if key not in desired:
            body[key] = None
    return {"status": body}


def _normalised(status: Mapping[str, Any]) -> dict[str, Any]:
    # The order of conditions carries no meaning, nor does a null field: the API server stores none
    # (a null in a merge patch removes the field), so a stored status lacks what a desired one has as null.
    out = _pruned(status)
    out["conditions"] = sorted((c for c in status.get("conditions") or []), key=lambda c: str(c.get("type")))
    return out


def _pruned(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _pruned(v) if isinstance(v, Mapping) else v for k, v in value.items() if v is not None}


@dataclass(frozen=True)
class Transition:
    """A condition that changed status: the operator reports it as an Event."""

    type: str
    old: str | None
    new: str
    reason: str
    message: str

    @property
    def warning(self) -> bool:
        # A True condition is good news except for Expired and Exhausted.
        bad_when_true = self.type in ("Expired", "Exhausted")
        return (self.new == "True") == bad_when_true and self.new != "Unknown"


def transitions(current: Iterable[Mapping[str, Any]], merged: Iterable[Mapping[str, Any]]) -> list[Transition]:
    """Conditions whose status changed. A condition appearing for the first
    time counts only when it is bad news (a new object is not an event)."""
    before = {c.get("type"): c.get("status") for c in current}
    changes = []
    for cond in merged:
        if cond.get("type") in OWNED_CONDITIONS and before.get(cond["type"]) != cond.get("status"):
            change = Transition(cond["type"], before.get(cond["type"]), cond["status"],
                                cond.get("reason", ""), cond.get("message", ""))
            if change.old is not None or change.warning:
                changes.append(change)
    return changes
