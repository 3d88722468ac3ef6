"""Shared building blocks of the v1alpha1 API: object metadata, references,
Kubernetes-shaped conditions and the common status."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "lockgate.io"
VERSION = "v1alpha1"
API_VERSION: Literal["lockgate.io/v1alpha1"] = "lockgate.io/v1alpha1"  # GROUP/VERSION, spelled out for the type

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# A host a Route or MCPServer answers on: a DNS name or IP (with an optional
# port), `*.suffix`, or `*`. Written with character classes so the same text is
# a Python, JSON Schema and CEL (RE2) regular expression.
HOST_PATTERN = r"^([*][.])?[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]+)?$|^[*]$"
HOST_MESSAGE = "a host is a DNS name or IP address (optionally with :port), *.suffix, or *"
MAX_HOSTS = 64


def list_map(*keys: str) -> dict[str, Any]:
    """JSON Schema extras of a list of objects keyed by `keys`: the API server
    refuses two items with the same key (and merges such lists by key)."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


def _check_host(host: str) -> str:
    if not re.match(HOST_PATTERN, host):
        raise ValueError(f"invalid host {host!r}: {HOST_MESSAGE}")
    return host


Host = Annotated[
    str,
    Field(min_length=1, max_length=253, json_schema_extra={
        "x-kubernetes-validations": [{"rule": f"self.matches('{HOST_PATTERN}')", "message": HOST_MESSAGE}],
    }),
    AfterValidator(_check_host),
]


def repeated(names: Iterable[str]) -> list[str]:
    """Names that occur more than once, in first-seen order (for error messages)."""
    counts = Counter(names)
    return [name for name, count in counts.items() if count > 1]


class ApiModel(BaseModel):
    """Base of every API type: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ObjectMeta(BaseModel):
    """The part of Kubernetes metadata Lockgate reads; the rest is kept as is."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253)
    namespace: str = "default"
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None


class SecretKeyRef(ApiModel):
    """A key inside a Secret of the object's own namespace."""

    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253, description="Name of the Secret, in the same namespace.")
    key: str = Field(min_length=1, max_length=253, description="Key inside the Secret's data.")


class CredentialsRef(ApiModel):
    """Where the credential the gateway sends upstream is kept."""

    secret_ref: SecretKeyRef = Field(description="The Secret key holding the credential.")


class ServiceRef(ApiModel):
    """A Service of the same namespace; its ready endpoints come from its EndpointSlices."""

    name: str = Field(pattern=DNS_LABEL, max_length=63, description="Name of the Service, in the same namespace.")
    port: int | str = Field(description="Port name or number, as in the Service's EndpointSlices.")


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """A Kubernetes-shaped condition (metav1.Condition)."""

    type: str = Field(min_length=1, max_length=316,
                      description="Accepted, ResolvedRefs, Ready, Programmed, Expired or Exhausted.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024,
                        description="Why, in one CamelCase word (for example SecretNotFound).")
    message: str = Field(default="", max_length=32768, description="What happened and what to do about it.")
    observed_generation: int | None = Field(default=None, ge=0,
                                            description="The metadata.generation this condition was set for.")
    last_transition_time: datetime | None = Field(default=None, description="When the status last changed.")


class ResourceStatus(ApiModel):
    """What the operator reports on every Lockgate resource."""

    observed_generation: int | None = Field(default=None, description="The generation the operator last processed.")
    conditions: list[Condition] = Field(
        default_factory=list, json_schema_extra=list_map("type"),
        description="Accepted, ResolvedRefs, Ready, Programmed (and for ApiKeys Expired, Exhausted); one per type.",
    )


def condition(status: ResourceStatus, type_: str) -> Condition | None:
    """The condition of a type, if present."""
    return next((c for c in status.conditions if c.type == type_), None)
