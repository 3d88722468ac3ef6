"""Status conditions the translator writes: Accepted, ResolvedRefs and Ready.

A resource is either rejected (left out of the IR, `Accepted=False`) or
accepted; an accepted resource may still be unable to serve (`Ready=False`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime
from typing import Literal

from lockgate.api.meta import Condition
from lockgate.operator.translate import ObjectStatus

# Rejections caused by a reference to something missing; they also set
# ResolvedRefs=False (the Gateway API convention).
REF_REASONS = frozenset({"SecretNotFound", "SecretNotManaged", "UnknownModel", "UnknownServer", "RefNotPermitted"})


class Rejected(Exception):
    """Raised by a kind's translation: the resource is left out of the IR."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class NotReady:
    """An accepted resource that cannot serve yet."""

    reason: str
    message: str


@lru_cache(maxsize=1024)
def _cond(type_: str, ok: bool | None, reason: str, message: str, generation: int | None, now: datetime) -> Condition:
    """One condition; equal ones are one shared (read-only) object, as thousands of keys have the same."""
    status: Literal["True", "False", "Unknown"] = "Unknown" if ok is None else ("True" if ok else "False")
    return Condition(
        type=type_, status=status, reason=reason, message=message, observed_generation=generation, last_transition_time=now
    )


_LISTS: dict[tuple[int, ...], list[Condition]] = {}  # by the conditions' ids (the lists keep them alive)


def _conditions(*conditions: Condition) -> list[Condition]:
    """The list of an accepted object's conditions, shared by the objects with the same (read-only)."""
    at = tuple(map(id, conditions))
    shared = _LISTS.get(at)
    if shared is None:
        if len(_LISTS) >= 256:
            _LISTS.clear()
        shared = _LISTS[at] = list(conditions)
    return shared


def rejected_status(error: Rejected, generation: int | None, now: datetime) -> ObjectStatus:
    refs_ok: bool | None = False if error.reason in REF_REASONS else None
    refs_reason = error.reason if error.reason in REF_REASONS else "NotChecked"
    return ObjectStatus(
        generation=generation,
        conditions=[
            _cond("Accepted", False, error.reason, error.message, generation, now),
            _cond("ResolvedRefs", refs_ok, refs_reason, error.message if refs_ok is False else "", generation, now),
            _cond("Ready", False, "NotAccepted", f"not accepted: {error.message}", generation, now),
        ],
    )


def accepted_status(
    generation: int | None, now: datetime, not_ready: NotReady | None = None, fields: Mapping[str, object] | None = None,
    unresolved: Rejected | None = None,
) -> ObjectStatus:
    """`unresolved`: references left out (the resource serves without them), as ResolvedRefs=False."""
    ready = _cond("Ready", True, "Ready", "", generation, now)
    if not_ready is not None:
        ready = _cond("Ready", False, not_ready.reason, not_ready.message, generation, now)
    refs = _cond("ResolvedRefs", True, "ResolvedRefs", "", generation, now)
    if unresolved is not None:
        refs = _cond("ResolvedRefs", False, unresolved.reason, unresolved.message, generation, now)
    return ObjectStatus(
        generation=generation,
        conditions=_conditions(_cond("Accepted", True, "Accepted", "", generation, now), refs, ready),
        fields=fields if isinstance(fields, dict) else dict(fields or {}),  # read-only once given
    )
