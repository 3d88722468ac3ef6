"""A configuration compiled once into look-up tables for the request path.

`compile_snapshot` turns a `Snapshot` (IR + credentials) into a frozen
`CompiledSnapshot`: key hash -> key, host -> what the host serves to each
namespace, per namespace its pool (model -> provider tiers), alias and glob
tables. A request reads the snapshot current when it started and keeps it to
the end, so a swap never changes a request in flight.

Namespaces are tenants: a namespace's pool holds the models of its own
ModelProviders and of those shared with it, so two namespaces may both serve
a `gpt-4o` of their own; a key sees a host only through the Routes of its
own namespace.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from lockgate.api.ir import (Alias, Budget, CachePolicy, ConsumerKey, GatewayConfig, Provider, ProviderModel, Route,
                             namespace_of)
from lockgate.api.prices import Rates
from lockgate.common.gc_pause import collector_paused
from lockgate.proxy.source import Snapshot
from lockgate.proxy.upstream import UpstreamTransport


@dataclass(frozen=True, slots=True)
class KeyEntry:
    key: ConsumerKey
    not_after: float | None  # epoch seconds after which this hash is refused (rotated out)
    expires_at: float | None  # epoch seconds of the key's expiry
    models: re.Pattern[str] | None  # compiled model globs; None = every model
    routes: frozenset[str] | None  # route ids and names; None = every route
    namespace: str = ""  # the ApiKey's namespace: the tenant it belongs to


@dataclass(frozen=True)
class Target:
    """One provider serving one model."""

    provider: Provider
    model: ProviderModel
    rates: Rates | None = None  # the model's prices, compiled; None: it costs nothing


def rates_of(model: ProviderModel) -> Rates | None:
    p = model.pricing
    return None if p is None else Rates.of(p.currency, p.input, p.output, p.cached_input)


Tiers = tuple[tuple[Target, ...], ...]


@dataclass(frozen=True)
class Pool:
    """The models one namespace may use: its own providers' and those shared with it."""

    tiers: dict[str, Tiers] = field(default_factory=dict)  # model -> priority tiers (0 first)
    fixed_plans: dict[str, list[Target]] = field(default_factory=dict)  # models with one target: their plan
    served_models: tuple[str, ...] = ()


EMPTY_POOL = Pool()


@dataclass(frozen=True)
class OpenAIView:
    """The OpenAI API as a namespace's keys see it on one host (the union of
    the namespace's openai Routes there), or anywhere (templates, model tools)."""

    route_ids: tuple[str, ...]
    models: re.Pattern[str] | None  # None = every model
    aliases: dict[str, Alias]
    timeout: float | None = None  # the Routes' whole-request timeout (the shortest), over the providers' own
    pool: Pool = EMPTY_POOL
    batch: bool = False  # a Route says its requests are of the batch class
    queue_max_wait: float | None = None  # the Routes' queue wait (the shortest), over the providers' own
    cache: CachePolicy | None = None  # the response cache of the first of these Routes (by id) that has one
    cache_route: str = ""  # that Route's id: its entries are kept under it

    def shows(self, model: str) -> bool:
        return model in self.aliases or self.models is None or self.models.match(model) is not None


@dataclass(frozen=True)
class HostView:
    openai_by_namespace: dict[str, OpenAIView]  # namespace -> what its keys see of the OpenAI API here
    templates: dict[str, Route]  # path -> chatTemplate Route
    namespaces: frozenset[str] = frozenset()  # namespaces with a Route on this host
    open: bool = False  # no openai Route anywhere: every key sees its own namespace's models on every host

    def openai_for(self, namespace: str) -> OpenAIView | None:
        return self.openai_by_namespace.get(namespace)

    def admits(self, namespace: str) -> bool:
        """Whether keys of `namespace` may be used on this host at all."""
        return self.open or namespace in self.namespaces


@dataclass(frozen=True)
class CompiledSnapshot:
    config: GatewayConfig
    credentials: dict[str, str]
    loaded_at: datetime
    credentials_hash: str
    keys_by_hash: dict[str, KeyEntry]
    providers: dict[str, Provider]
    exact_hosts: dict[str, HostView]
    suffix_hosts: tuple[tuple[str, HostView], ...]  # ".example.com" -> view, longest first
    any_host: HostView | None
    # Per namespace, its pool and its openai Routes' aliases, for callers with
    # no host (chat templates, MCP model tools).
    namespace_views: dict[str, OpenAIView] = field(default_factory=dict)
    transports: dict[str, UpstreamTransport] = field(default_factory=dict)  # provider id -> its own proxy, TLS
    budgets: dict[str, tuple[Budget, ...]] = field(default_factory=dict)  # key id -> the team Budgets it spends from

    def host_view(self, host: str) -> HostView | None:
        view = self.exact_hosts.get(host)
        if view is not None:
            return view
        bare = _strip_port(host)
        view = self.exact_hosts.get(bare)
        if view is not None:
            return view
        for suffix, candidate in self.suffix_hosts:
            if bare.endswith(suffix):
                return candidate
        return self.any_host

    def namespace_view(self, namespace: str) -> OpenAIView:
        """Every model and alias of a namespace, host aside."""
        return self.namespace_views.get(namespace) or OpenAIView((), None, {})

    def credential(self, provider: Provider) -> str | None:
        return self.credentials.get(provider.credential) if provider.credential else None

    def transport(self, provider: Provider) -> UpstreamTransport | None:
        """The provider's own proxy and TLS material, or None for the pool's defaults."""
        return self.transports.get(provider.id)


def _compile_transports(providers: tuple[Provider, ...], credentials: dict[str, str]) -> dict[str, UpstreamTransport]:
    transports = {}
    for p in providers:
        if p.proxy is None and p.ca_bundle is None and p.client_certificate is None:
            continue
        cert = p.client_certificate
        transports[p.id] = UpstreamTransport(
            proxy=None if p.proxy is None else "" if p.proxy == "direct" else p.proxy,
            ca_pem=credentials.get(p.ca_bundle) if p.ca_bundle else None,
            cert_pem=credentials.get(cert) if cert else None,
            key_pem=credentials.get(cert + ".key") if cert else None,
        )
    return transports


def _strip_port(host: str) -> str:
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    head, sep, tail = host.rpartition(":")
    return head if sep and tail.isdigit() else host


def compile_globs(globs: tuple[str, ...] | None) -> re.Pattern[str] | None:
    """One regex for a list of globs; None when the list allows everything."""
    if globs is None or "*" in globs:
        return None
    if not globs:
        return re.compile(r"(?!)")  # matches nothing
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs))


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def _route_names(route_ids: tuple[str, ...] | None) -> frozenset[str] | None:
    if route_ids is None:
        return None
    # Keys may name routes by id (ns/name) or by bare name.
    return frozenset(route_ids) | frozenset(r.rsplit("/", 1)[-1] for r in route_ids)


def _compile_keys(config: GatewayConfig, previous: dict[str, KeyEntry] | None = None) -> dict[str, KeyEntry]:
    """Key hash -> entry; an entry of `previous` whose key is unchanged is taken as it is (no recompiling)."""
    table: dict[str, KeyEntry] = {}
    old = previous or {}
    for key in config.keys:
        compiled: tuple[re.Pattern[str] | None, frozenset[str] | None] | None = None
        for h in key.hashes:
            digest = h.sha256 if _lower_hex(h.sha256) else h.sha256.lower()  # no copy of what is lower already
            entry = old.get(digest)
            if entry is None or (entry.key is not key and entry.key != key):
                if compiled is None:
                    compiled = compile_globs(key.models), _route_names(key.routes)
                entry = KeyEntry(key, _epoch(h.not_after), _epoch(key.expires_at), compiled[0], compiled[1],
                                 namespace_of(key.id))
            table[digest] = entry
    return table


def _lower_hex(text: str) -> bool:
    return text.islower() or text.isdigit()


def _pool(providers: list[Provider]) -> Pool:
    by_model: dict[str, dict[int, list[Target]]] = {}
    for provider in providers:
        for model in provider.models:
            target = Target(provider, model, rates_of(model))
            by_model.setdefault(model.name, {}).setdefault(provider.priority, []).append(target)
    tiers = {name: tuple(tuple(tiers[p]) for p in sorted(tiers)) for name, tiers in by_model.items()}
    return Pool(tiers, {m: [t[0][0]] for m, t in tiers.items() if len(t) == 1 and len(t[0]) == 1}, tuple(sorted(tiers)))


def _namespace_views(config: GatewayConfig) -> dict[str, OpenAIView]:
    """Per namespace that has anything configured: its pool, and its openai Routes' aliases."""
    namespaces = {namespace_of(o.id) for group in (config.providers, config.routes, config.keys, config.mcp_servers)
                  for o in group}
    views = {}
    for ns in sorted(namespaces):
        aliases = {a.name: a for r in config.routes if r.type == "openai" and namespace_of(r.id) == ns for a in r.aliases}
        views[ns] = OpenAIView((), None, aliases, None, _pool([p for p in config.providers if p.serves(ns)]))
    return views


def _openai_view(routes: list[Route], pool: Pool) -> OpenAIView:
    globs: list[str] = [g for r in routes for g in r.models]
    aliases = {a.name: a for r in routes for a in r.aliases}
    timeouts = [r.timeout for r in routes if r.timeout is not None]
    cached = min((r for r in routes if r.cache is not None), key=lambda r: r.id, default=None)
    waits = [r.queue_max_wait for r in routes if r.queue_max_wait is not None]
    return OpenAIView(tuple(r.id for r in routes), compile_globs(tuple(globs)), aliases,
                      min(timeouts) if timeouts else None, pool, any(r.priority == "batch" for r in routes),
                      min(waits) if waits else None,
                      cache=cached.cache if cached else None, cache_route=cached.id if cached else "")


def _view(routes: list[Route], namespace_views: dict[str, OpenAIView], open_everywhere: bool) -> HostView:
    templates = {r.path: r for r in routes if r.type == "chatTemplate" and r.path}
    if open_everywhere:
        return HostView(namespace_views, templates, frozenset(namespace_views), open=True)
    by_namespace: dict[str, list[Route]] = {}
    for route in routes:
        if route.type == "openai":
            by_namespace.setdefault(namespace_of(route.id), []).append(route)
    openai = {ns: _openai_view(rs, namespace_views[ns].pool) for ns, rs in by_namespace.items()}
    return HostView(openai, templates, frozenset(namespace_of(r.id) for r in routes))


def _compile_hosts(config: GatewayConfig, namespace_views: dict[str, OpenAIView]
                   ) -> tuple[dict[str, HostView], tuple[tuple[str, HostView], ...], HostView | None]:
    # With no openai Route at all, the OpenAI API is served on every host, each key seeing its namespace's models.
    open_everywhere = not any(r.type == "openai" for r in config.routes)
    by_host: dict[str, list[Route]] = {}
    for route in config.routes:
        for host in route.hosts:
            by_host.setdefault(host.lower(), []).append(route)
    exact: dict[str, HostView] = {}
    suffixes: list[tuple[str, HostView]] = []
    any_host: HostView | None = None
    star_routes = by_host.get("*", [])
    for host, routes in by_host.items():
        if host == "*":
            continue
        view = _view(routes + star_routes, namespace_views, open_everywhere)
        if host.startswith("*."):
            suffixes.append((host[1:], view))
        else:
            exact[host] = view
    if star_routes or open_everywhere:
        any_host = _view(star_routes, namespace_views, open_everywhere)
    suffixes.sort(key=lambda item: -len(item[0]))
    return exact, tuple(suffixes), any_host


def compile_snapshot(snapshot: Snapshot, loaded_at: datetime | None = None,
                     previous: CompiledSnapshot | None = None) -> CompiledSnapshot:
    """`previous`: the snapshot this one replaces; what did not change is taken from it (when only keys
    changed, the hosts, views and pools; and every unchanged key's entry)."""
    with collector_paused(freeze=True):
        return _compile(snapshot, loaded_at, previous)


def _compile(snapshot: Snapshot, loaded_at: datetime | None, previous: CompiledSnapshot | None) -> CompiledSnapshot:
    config = snapshot.config
    if previous is not None and _only_keys_changed(previous.config, config):
        namespace_views = previous.namespace_views
        exact, suffixes, any_host = previous.exact_hosts, previous.suffix_hosts, previous.any_host
        providers = previous.providers
    else:
        namespace_views = _namespace_views(config)
        exact, suffixes, any_host = _compile_hosts(config, namespace_views)
        providers = {p.id: p for p in config.providers}
    return CompiledSnapshot(
        config=config,
        credentials=dict(snapshot.credentials.values),
        loaded_at=loaded_at or datetime.now(timezone.utc),
        credentials_hash=snapshot.credentials.content_hash(),
        keys_by_hash=_compile_keys(config, previous.keys_by_hash if previous is not None else None),
        providers=providers,
        exact_hosts=exact,
        suffix_hosts=suffixes,
        any_host=any_host,
        namespace_views=namespace_views,
        transports=_compile_transports(config.providers, snapshot.credentials.values),
        budgets=_key_budgets(config),
    )


def _only_keys_changed(old: GatewayConfig, new: GatewayConfig) -> bool:
    """Whether everything the hosts and views are compiled from is the same (keys aside, but for their namespaces)."""
    return (old.providers == new.providers and old.routes == new.routes and old.mcp_servers == new.mcp_servers
            and _key_namespaces(old) == _key_namespaces(new))


def _key_namespaces(config: GatewayConfig) -> set[str]:
    return {namespace_of(k.id) for k in config.keys}


def _key_budgets(config: GatewayConfig) -> dict[str, tuple[Budget, ...]]:
    by_id = {b.id: b for b in config.budgets}
    return {k.id: tuple(by_id[b] for b in k.budgets if b in by_id) for k in config.keys if k.budgets}
