"""The translation pass: every Lockgate resource once, in dependency order
(providers, routes, MCP servers, keys), each either accepted into the IR or
rejected with a status that says why. One bad resource never stops the rest."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from lockgate.api import ir
from lockgate.api.gateway_key import gateway_apikey, gateway_key_id
from lockgate.api.grants import AllowedNamespaces
from lockgate.api.resources import ApiKey, Budget, MCPServer, ModelProvider, Resource, Route
from lockgate.operator.translate import ObjectRef, ObjectStatus, Translation
from lockgate.operator.translate.bundle import Bundle, collect, name_of, namespace_of
from lockgate.operator.translate.bundle import identity
from lockgate.operator.translate.cache import KeyEntry, KeyInputs, KeyRefs, KeyResult, ParsedEntry, TranslationCache
from lockgate.operator.translate.conditions import NotReady, Rejected, accepted_status, rejected_status
from lockgate.operator.translate.budgets import key_budgets, translate_budget
from lockgate.operator.translate.keys import KeyOutcome, key_instants, translate_key
from lockgate.operator.translate.mcp import translate_mcp
from lockgate.operator.translate.providers import translate_provider
from lockgate.operator.translate.routes import translate_route
from lockgate.operator.translate.tenancy import ModelPools, server_ref

R = TypeVar("R", bound=Resource[Any, Any])


class _Pass:
    def __init__(self, bundle: Bundle, now: datetime, cache: TranslationCache | None) -> None:
        self.bundle = bundle
        self.now = now
        self.cache = cache
        self.seen_parsed: set[tuple[str, str, str]] = set()
        self.seen_keys: set[tuple[str, str]] = set()
        self.statuses: dict[ObjectRef, ObjectStatus] = {}
        self.credentials: dict[str, str] = {}
        self.budget_objects: dict[str, Budget] = {}

    def parsed(self, kind: str, model: type[R]) -> list[R]:
        """Valid resources of a kind; invalid ones get InvalidSpec now."""
        out: list[R] = []
        for raw in self.bundle.resources[kind]:
            result = self._parse(kind, raw, model)
            if isinstance(result, str):
                ref = ObjectRef(kind, namespace_of(raw), name_of(raw))
                generation = (raw.get("metadata") or {}).get("generation")
                self.statuses[ref] = rejected_status(Rejected("InvalidSpec", result), generation, self.now)
            else:
                out.append(result)
        return out

    def _parse(self, kind: str, raw: Mapping[str, Any], model: type[R]) -> R | str:
        """The validated resource, or why it is invalid (memoized by the object's identity)."""
        memo = self.cache.parsed if self.cache is not None else None
        at = (kind, namespace_of(raw), name_of(raw))
        token = identity(raw)
        if memo is not None:
            self.seen_parsed.add(at)
            entry = memo.get(at)
            if entry is not None and entry.token == token:
                return entry.result  # type: ignore[no-any-return]
        result: R | str
        try:
            result = model.model_validate(raw)
        except ValidationError as exc:
            result = _describe(exc)
        if memo is not None:
            memo[at] = ParsedEntry(token, result)
        return result

    def reject(self, obj: Resource[Any, Any], error: Rejected) -> None:
        self.statuses[_ref(obj)] = rejected_status(error, obj.metadata.generation, self.now)

    def accept(self, obj: Resource[Any, Any], not_ready: NotReady | None = None, fields: dict[str, object] | None = None,
               unresolved: Rejected | None = None) -> None:
        self.statuses[_ref(obj)] = accepted_status(obj.metadata.generation, self.now, not_ready, fields, unresolved)


def translate_objects(objects: Iterable[Mapping[str, Any]], now: datetime,
                      cache: TranslationCache | None = None) -> Translation:
    """With a `cache` (the same one each call), objects whose inputs did not change are not translated again."""
    seen_secrets: set[tuple[str, str]] = set()
    p = _Pass(collect(objects, cache.secrets if cache is not None else None, seen_secrets), now, cache)
    providers = _providers(p)
    pools = ModelPools(providers)
    routes, aliases = _routes(p, pools)
    seen_hashes: dict[str, str] = {}  # key hash -> the key id that has it
    servers, grants, server_keys = _mcp_servers(p, pools, aliases, seen_hashes)
    budgets = _budgets(p)
    keys = server_keys + _keys(p, grants, budgets, seen_hashes)
    _accept_budgets(p, budgets, keys)
    config = ir.GatewayConfig(
        providers=tuple(sorted(providers, key=lambda x: x.id)),
        keys=tuple(sorted(keys, key=lambda x: x.id)),
        routes=tuple(sorted(routes, key=lambda x: x.id)),
        mcp_servers=tuple(sorted(servers, key=lambda x: x.id)),
        budgets=tuple(sorted(budgets.values(), key=lambda x: x.id)),
    ).with_hash()
    if cache is not None:
        cache.prune(p.seen_keys, p.seen_parsed, seen_secrets)
    return Translation(config=config, credentials=ir.Credentials(values=dict(sorted(p.credentials.items()))), statuses=p.statuses)


def _providers(p: _Pass) -> list[ir.Provider]:
    providers: list[ir.Provider] = []
    for obj in p.parsed("ModelProvider", ModelProvider):
        try:
            outcome = translate_provider(obj, p.bundle)
        except Rejected as error:
            p.reject(obj, error)
            continue
        providers.append(outcome.provider)
        p.credentials.update(outcome.credentials)
        p.accept(obj, outcome.not_ready, outcome.fields)
    return providers


def _routes(p: _Pass, pools: ModelPools) -> tuple[list[ir.Route], dict[str, set[str]]]:
    """The accepted routes, and the aliases of each namespace's openai routes."""
    routes: list[ir.Route] = []
    aliases: dict[str, set[str]] = {}
    claimed: dict[tuple[str, str], str] = {}
    # openai routes first: their aliases may be what a template route calls
    for obj in sorted(p.parsed("Route", Route), key=lambda r: r.spec.type != "openai"):
        ns = obj.metadata.namespace
        try:
            route = translate_route(obj, pools, aliases.get(ns, set()))
            if route.path is not None:
                _claim(claimed, [(h, route.path) for h in route.hosts], route.id, "host and path", "".join)
        except Rejected as error:
            p.reject(obj, error)
            continue
        routes.append(route)
        aliases.setdefault(ns, set()).update(a.name for a in route.aliases)
        p.accept(obj)
    return routes, aliases


def _mcp_servers(
    p: _Pass, pools: ModelPools, aliases: dict[str, set[str]], seen_hashes: dict[str, str]
) -> tuple[list[ir.McpServer], dict[str, AllowedNamespaces], list[ir.ConsumerKey]]:
    """The accepted servers, their grants by id, and their own gateway keys."""
    keys: list[ir.ConsumerKey] = []
    servers: dict[str, ir.McpServer] = {}
    grants: dict[str, AllowedNamespaces] = {}
    tool_counts: dict[str, int | None] = {}
    paths: dict[str, str] = {}
    # aggregates last: they need their members' outcome
    for obj in sorted(p.parsed("MCPServer", MCPServer), key=lambda s: s.spec.aggregate is not None):
        try:
            members = {k: v for k, v in servers.items() if v.kind != "aggregate"}  # aggregates do not nest
            ns_aliases = aliases.get(obj.metadata.namespace, set())
            outcome = translate_mcp(obj, p.bundle, pools, ns_aliases, members, tool_counts, grants)
            _claim(paths, [outcome.server.path], outcome.server.id, "path")
        except Rejected as error:
            p.reject(obj, error)
            continue
        not_ready, fields = outcome.not_ready, outcome.fields
        if obj.spec.gateway_key is not None:
            try:
                key_outcome = _gateway_key(p, obj, seen_hashes)
            except Rejected as error:
                p.reject(obj, error)
                continue
            if key_outcome.key is not None:
                keys.append(key_outcome.key)
            not_ready = not_ready or key_outcome.not_ready
            fields = {**fields, "gatewayKeySecret": key_outcome.fields.get("secretName"),
                      "keyHashPrefix": key_outcome.fields.get("keyHashPrefix")}
        servers[outcome.server.id] = outcome.server
        tool_counts[outcome.server.id] = outcome.tool_count
        grants[outcome.server.id] = obj.spec.allowed_namespaces
        p.credentials.update(outcome.credentials)
        p.accept(obj, not_ready, fields)
    return list(servers.values()), grants, keys


def _budgets(p: _Pass) -> dict[str, ir.Budget]:
    """The valid Budgets by id (accepted once the keys spending from them are known)."""
    p.budget_objects = {obj.ref: obj for obj in p.parsed("Budget", Budget)}
    return {ref: translate_budget(obj) for ref, obj in p.budget_objects.items()}


def _accept_budgets(p: _Pass, budgets: dict[str, ir.Budget], keys: list[ir.ConsumerKey]) -> None:
    for ref, obj in p.budget_objects.items():
        spenders = sorted(k.id.partition("/")[2] for k in keys if ref in k.budgets)
        p.accept(obj, fields={"keys": spenders})


def _gateway_key(p: _Pass, obj: MCPServer, seen_hashes: dict[str, str]) -> KeyOutcome:
    """The MCPServer's gateway key, translated as the ApiKey it is shaped as (its id its own)."""
    shaped = gateway_apikey(obj.model_dump(mode="json", by_alias=True, exclude_none=True))
    assert shaped is not None
    outcome = translate_key(ApiKey.model_validate({**shaped, "kind": "ApiKey"}), p.bundle, p.now, {})
    if outcome.key is not None:
        key_id = gateway_key_id(obj.metadata.namespace, obj.metadata.name)
        outcome.key = outcome.key.model_copy(update={"id": key_id})
    _claim_key(seen_hashes, outcome)
    return outcome


def _claim_key(seen_hashes: dict[str, str], outcome: KeyOutcome) -> None:
    """A key's hashes are its own: the first (in namespace/name order) keeps them."""
    if outcome.key is not None:
        _claim(seen_hashes, [h.sha256 for h in outcome.key.hashes], outcome.key.id, "key")


def _keys(p: _Pass, grants: dict[str, AllowedNamespaces], budgets: dict[str, ir.Budget],
          seen_hashes: dict[str, str]) -> list[ir.ConsumerKey]:
    """`seen_hashes`: the servers' gateway keys, claimed first (an ApiKey with the same key is refused)."""
    keys: list[ir.ConsumerKey] = []
    for raw in p.bundle.resources["ApiKey"]:
        ref = ObjectRef("ApiKey", namespace_of(raw), name_of(raw))
        generation, result = _key_result(p, raw, grants, budgets)
        error = result.rejected
        if error is None and result.key is not None:
            try:
                _claim(seen_hashes, [h.sha256 for h in result.key.hashes], result.key.id, "key")
            except Rejected as conflict:
                error = conflict
        if error is not None:
            p.statuses[ref] = rejected_status(error, generation, p.now)
            continue
        if result.key is not None:
            keys.append(result.key)
        p.statuses[ref] = accepted_status(generation, p.now, result.not_ready, dict(result.fields), result.unresolved)
    return keys


def _key_result(p: _Pass, raw: Mapping[str, Any], grants: Mapping[str, AllowedNamespaces],
                budgets: Mapping[str, ir.Budget]) -> tuple[int | None, KeyResult]:
    """An ApiKey's outcome before hash claims: from the cache when none of its inputs changed."""
    at = (namespace_of(raw), name_of(raw))
    token = identity(raw)
    entry = p.cache.keys.get(at) if p.cache is not None else None
    if p.cache is not None:
        p.seen_keys.add(at)
        if entry is not None and entry.token == token and (
                entry.refs is None or entry.inputs == _key_inputs(p, entry.refs, grants, budgets)):
            p.cache.hits += 1
            return entry.generation, entry.result
        p.cache.misses += 1
    refs: KeyRefs | None = None
    try:
        obj = ApiKey.model_validate(raw)
    except ValidationError as exc:
        generation = (raw.get("metadata") or {}).get("generation")
        result = KeyResult(None, None, {}, None, Rejected("InvalidSpec", _describe(exc)))
    else:
        generation = obj.metadata.generation
        refs = _key_refs(obj, p.bundle)
        result = _translate_key(p, obj, grants, budgets)
    if p.cache is not None:
        inputs = _key_inputs(p, refs, grants, budgets) if refs is not None else None
        p.cache.keys[at] = KeyEntry(token, generation, refs, inputs, result)
    return generation, result


def _translate_key(p: _Pass, obj: ApiKey, grants: Mapping[str, AllowedNamespaces],
                   budgets: Mapping[str, ir.Budget]) -> KeyResult:
    try:
        spends_from = key_budgets(obj, budgets)
        outcome = translate_key(obj, p.bundle, p.now, grants)
    except Rejected as error:
        return KeyResult(None, None, {}, None, error)
    key = outcome.key.model_copy(update={"budgets": spends_from}) if outcome.key is not None else None
    return KeyResult(key, outcome.not_ready, outcome.fields, outcome.unresolved, None)


def _key_refs(obj: ApiKey, bundle: Bundle) -> KeyRefs:
    spec, ns = obj.spec, obj.metadata.namespace
    name = spec.existing_secret.name if spec.existing_secret is not None else spec.secret_name
    secret = bundle.secret(ns, name) if name is not None else None
    return KeyRefs(
        secret=(ns, name) if name is not None else None,
        budgets=tuple(f"{ns}/{b}" for b in obj.spec.budgets),
        servers=tuple(server_ref(ns, s) for s in spec.mcp_servers or ()),
        instants=key_instants(obj, secret),
    )


def _key_inputs(p: _Pass, refs: KeyRefs, grants: Mapping[str, AllowedNamespaces],
                budgets: Mapping[str, ir.Budget]) -> KeyInputs:
    return KeyInputs(
        secret=p.bundle.secrets.get(refs.secret) if refs.secret is not None else None,
        budgets=tuple(budgets.get(b) for b in refs.budgets),
        grants=tuple(grants.get(s) for s in refs.servers),
        after=tuple(p.now >= t for t in refs.instants),
    )


K = TypeVar("K")


def _claim(claims: dict[K, str], wanted: Iterable[K], owner: str, what: str, show: Callable[[Any], str] = str) -> None:
    """First come (in namespace/name order) keeps a host+path, a path or a key."""
    wanted = list(wanted)
    for item in wanted:
        holder = claims.get(item)
        if holder is not None and holder != owner:
            shown = "" if what == "key" else f" {show(item)}"
            raise Rejected("Conflict", f"the same {what}{shown} is already used by {holder}")
    for item in wanted:
        claims[item] = owner


def _ref(obj: Resource[Any, Any]) -> ObjectRef:
    return ObjectRef(obj.kind, obj.metadata.namespace, obj.metadata.name)


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        loc = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in error["loc"]).replace(".[", "[")
        msg = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
