"""Namespaces are tenants: which models and MCP servers a namespace may use.

A Route, MCPServer or ApiKey uses what its own namespace defines, plus what
the owner of a ModelProvider or MCPServer in another namespace shares with it
(`spec.allowedNamespaces`). A reference that exists but is not shared is
refused with reason `RefNotPermitted`, so the message can say which grant is
missing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from lockgate.api import ir
from lockgate.api.grants import AllowedNamespaces
from lockgate.operator.translate.conditions import Rejected


class ModelPools:
    """Model names per namespace, from the accepted providers and their grants."""

    def __init__(self, providers: Iterable[ir.Provider]) -> None:
        self._providers = list(providers)
        self._cache: dict[str, frozenset[str]] = {}

    def models(self, namespace: str) -> frozenset[str]:
        """Names served to `namespace`: its own providers' and those shared with it."""
        names = self._cache.get(namespace)
        if names is None:
            names = frozenset(m.name for p in self._providers if p.serves(namespace) for m in p.models)
            self._cache[namespace] = names
        return names

    def withheld(self, namespace: str, model: str) -> list[str]:
        """Providers that serve `model` but do not share it with `namespace`."""
        return [p.id for p in self._providers if not p.serves(namespace) and any(m.name == model for m in p.models)]

    def require(self, namespace: str, wanted: Iterable[str], where: str, also: Collection[str] = ()) -> None:
        """Every wanted name is a model of the namespace's pool (or in `also`, its aliases), else Rejected."""
        models = self.models(namespace)
        unknown = [m for m in wanted if m not in models and m not in also]
        if not unknown:
            return
        withheld = {m: self.withheld(namespace, m) for m in unknown}
        if all(withheld.values()):
            detail = "; ".join(f"{m!r} is served by {', '.join(ids)}" for m, ids in withheld.items())
            verb = "does" if sum(map(len, withheld.values())) == 1 else "do"
            raise Rejected(
                "RefNotPermitted",
                f"{where}: {detail}, which {verb} not allow namespace {namespace} (spec.allowedNamespaces of the ModelProvider)",
            )
        missing = [m for m in unknown if not withheld[m]]
        raise Rejected(
            "UnknownModel",
            f"{where}: no accepted ModelProvider of namespace {namespace} (or shared with it) serves"
            f" {', '.join(map(repr, missing))}; {known(models | frozenset(also))}",
        )


def known(models: Collection[str]) -> str:
    names = sorted(models)
    if not names:
        return "no models are served to this namespace yet"
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    return f"known models: {shown}"


def server_ref(namespace: str, ref: str) -> str:
    """An MCPServer reference (`name`, or `namespace/name`) as an id."""
    return ref if "/" in ref else f"{namespace}/{ref}"


def permitted_server(namespace: str, server_id: str, grants: Mapping[str, AllowedNamespaces]) -> bool:
    """Whether `namespace` may use the MCPServer `server_id` (its own, or shared with it)."""
    owner = ir.namespace_of(server_id)
    if owner == namespace:
        return True
    grant = grants.get(server_id)
    return grant is not None and grant.grants(owner, namespace)
