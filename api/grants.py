"""Sharing across namespaces: the owner of a ModelProvider or MCPServer says
which other namespaces may use it (as Gateway API's ReferenceGrant and
`allowedRoutes.namespaces`, written on the shared object itself)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from lockgate.api.meta import DNS_LABEL, ApiModel

NamespacesFrom = Literal["Same", "All", "Names"]
NamespaceName = Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]


class AllowedNamespaces(ApiModel):
    """Which namespaces besides the object's own may use it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "(has(self.from) && self.from == 'Names') == (has(self.names) && size(self.names) > 0)",
                 "message": "names is set exactly when from is Names"},
            ]
        }
    )

    from_: NamespacesFrom = Field(
        default="Same", alias="from",
        description="Same (only the object's own namespace), All (every namespace) or Names (the ones listed).",
    )
    names: list[NamespaceName] | None = Field(
        default=None, max_length=256, description="Namespaces granted access, for from: Names."
    )

    @model_validator(mode="after")
    def _check(self) -> AllowedNamespaces:
        if (self.from_ == "Names") != bool(self.names):
            raise ValueError("names is set exactly when from is Names")
        return self

    def grants(self, owner_namespace: str, namespace: str) -> bool:
        """Whether a resource of `namespace` may use an object of `owner_namespace` with this grant."""
        if namespace == owner_namespace or self.from_ == "All":
            return True
        return self.from_ == "Names" and namespace in (self.names or ())

    def shared_with(self) -> tuple[str, ...]:
        """The grant as the IR holds it: namespace names, or ("*",) for every namespace."""
        if self.from_ == "All":
            return ("*",)
        return tuple(sorted(set(self.names or ()))) if self.from_ == "Names" else ()


SAME_NAMESPACE = AllowedNamespaces()
