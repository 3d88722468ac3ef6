"""The pure translator: Kubernetes objects in, gateway config IR and a status
per object out. Shared by the operator, `lockgate render` and `lockgate run`.
No I/O, no clock reads (the caller passes `now`), no Kubernetes client."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lockgate.api.ir import Credentials, GatewayConfig
from lockgate.api.meta import Condition

if TYPE_CHECKING:
    from lockgate.operator.translate.cache import TranslationCache


@dataclass(frozen=True, order=True)
class ObjectRef:
    kind: str  # ModelProvider | ApiKey | Route | MCPServer
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass
class ObjectStatus:
    """What the translator decided about one object: conditions Accepted,
    ResolvedRefs and Ready (Programmed is the operator's), plus kind-specific
    status fields in camelCase (readyEndpoints, models, toolCount, ...)."""

    generation: int | None
    conditions: list[Condition] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return any(c.type == "Accepted" and c.status == "True" for c in self.conditions)


@dataclass
class Translation:
    config: GatewayConfig  # hashed
    credentials: Credentials
    statuses: dict[ObjectRef, ObjectStatus]


def translate(objects: Iterable[Mapping[str, Any]], now: datetime, cache: TranslationCache | None = None) -> Translation:
    """Objects are raw manifests (dicts): the Lockgate kinds, Secrets,
    Services and EndpointSlices; anything else is ignored. A `cache` (the same
    one every call) keeps what did not change from being translated again."""
    from lockgate.operator.translate.translator import translate_objects

    return translate_objects(objects, now, cache)
