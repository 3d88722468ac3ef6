"""ApiKey -> ir.ConsumerKey: the key's SHA-256 (and the previous key's, during
a rotation), allowlists and limits. The key itself never leaves this module."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from lockgate.api import ir
from lockgate.api.apikey import (
    GENERATED_KEY_FIELD, PREVIOUS_KEY_EXPIRES_ANNOTATION, PREVIOUS_KEY_FIELD, ROTATE_ANNOTATION, ROTATED_FOR_ANNOTATION,
    SECRET_NOT_MANAGED, KeyLimits, key_secret_owner, key_secret_problem,
)
from lockgate.api.ir_trusted import trusted
from lockgate.api.resources import ApiKey
from lockgate.api.grants import AllowedNamespaces
from lockgate.operator.translate.budgets import money
from lockgate.operator.translate.bundle import Bundle, SecretData
from lockgate.operator.translate.conditions import NotReady, Rejected
from lockgate.operator.translate.secrets import secret_value
from lockgate.operator.translate.tenancy import permitted_server, server_ref

HASH_PREFIX_CHARS = 12


@dataclass
class KeyOutcome:
    key: ir.ConsumerKey | None  # None while the key Secret is pending
    not_ready: NotReady | None = None
    fields: dict[str, object] = field(default_factory=dict)
    unresolved: Rejected | None = None  # MCPServers left out: not shared with the key's namespace


def translate_key(obj: ApiKey, bundle: Bundle, now: datetime, grants: Mapping[str, AllowedNamespaces],
                  budgets: tuple[str, ...] = ()) -> KeyOutcome:
    """`grants`: the accepted MCPServers' spec.allowedNamespaces, by id; `budgets`: the ids of the Budgets
    the key spends from (resolved by `key_budgets`)."""
    spec, ns = obj.spec, obj.metadata.namespace
    secret_name = spec.secret_name or (spec.existing_secret.name if spec.existing_secret else None)
    fields: dict[str, object] = {"secretName": secret_name}
    hashes: list[ir.ApiKeyHash] = []
    not_ready: NotReady | None = None
    if spec.existing_secret is not None:
        hashes.append(_hash(secret_value(bundle, ns, spec.existing_secret, "spec.existingSecret")))
    else:
        secret = bundle.secret(ns, str(spec.secret_name))
        current = secret.values.get(GENERATED_KEY_FIELD) if secret else None
        problem = None
        if secret is not None:
            problem = key_secret_problem(ns, str(spec.secret_name), secret.labels, secret.owner_references,
                                         obj.metadata.name, obj.metadata.uid)
            if key_secret_owner(secret.owner_references, obj.metadata.name, obj.metadata.uid) is not None:
                raise Rejected(SECRET_NOT_MANAGED, str(problem))  # another ApiKey's key: never served under this one
        if secret is None or not current:
            pending = NotReady(SECRET_NOT_MANAGED, problem) if problem else NotReady(
                "KeyPending", f"waiting for the operator to generate the key into Secret {ns}/{spec.secret_name}")
            return KeyOutcome(None, pending, fields)
        if problem is not None and _rotation_pending(obj, secret):
            not_ready = NotReady(SECRET_NOT_MANAGED, f"the rotation asked for by {ROTATE_ANNOTATION} was not done"
                                                     f" and the current key keeps working: {problem}")
        hashes.append(_hash(current))
        previous = secret.values.get(PREVIOUS_KEY_FIELD)
        expires = _previous_expiry(secret.annotations.get(PREVIOUS_KEY_EXPIRES_ANNOTATION))
        if previous and expires is not None and expires > now:
            hashes.append(_hash(previous, expires))
    fields["keyHashPrefix"] = hashes[0].sha256[:HASH_PREFIX_CHARS]
    servers = [server_ref(ns, s) for s in spec.mcp_servers or ()]
    refused = [s for s in servers if not permitted_server(ns, s, grants)]
    unresolved = None
    if refused:
        unresolved = Rejected(
            "RefNotPermitted",
            f"spec.mcpServers: {', '.join(refused)} not found or not shared with namespace {ns}"
            " (spec.allowedNamespaces of the MCPServer); the key may not use them",
        )
    key = trusted(  # from the validated ApiKey: nothing to check twice
        ir.ConsumerKey,
        id=f"{ns}/{obj.metadata.name}",
        consumer=spec.consumer,
        hashes=tuple(hashes),
        expires_at=spec.expires_at,
        models=tuple(spec.models) if spec.models is not None else None,
        limits=_limits(spec.limits),
        model_limits={model: _limits(limits) for model, limits in sorted(spec.model_limits.items())} or NO_MAP,
        routes=tuple(f"{ns}/{r}" for r in spec.routes) if spec.routes is not None else None,
        mcp_servers=tuple(s for s in servers if s not in refused),
        mcp_tools={server_ref(ns, s): tuple(globs) for s, globs in sorted(spec.mcp_tools.items())} or NO_MAP,
        currency=spec.currency,
        cache=None if spec.cache is None else ir.KeyCache(enabled=spec.cache.enabled, scope=spec.cache.scope),
        priority=spec.priority,
        queue_weight=spec.queue_weight,
        budgets=budgets,
    )
    if spec.expires_at is not None and spec.expires_at <= now:
        not_ready = NotReady("Expired", f"the key expired at {spec.expires_at.isoformat()}; every call gets 401")
    return KeyOutcome(key, not_ready, fields, unresolved)


def key_instants(obj: ApiKey, secret: SecretData | None) -> tuple[datetime, ...]:
    """The instants at which the key's outcome changes by the clock alone: its expiry, its previous key's end."""
    instants = [obj.spec.expires_at] if obj.spec.expires_at is not None else []
    if secret is not None:
        previous = _previous_expiry(secret.annotations.get(PREVIOUS_KEY_EXPIRES_ANNOTATION))
        if previous is not None:
            instants.append(previous)
    return tuple(instants)


def _rotation_pending(obj: ApiKey, secret: SecretData) -> bool:
    """The ApiKey asks for a rotation its Secret does not show as done."""
    wanted = obj.metadata.annotations.get(ROTATE_ANNOTATION)
    return bool(wanted) and wanted != secret.annotations.get(ROTATED_FOR_ANNOTATION)


def _hash(key: str, not_after: datetime | None = None) -> ir.ApiKeyHash:
    return trusted(ir.ApiKeyHash, sha256=ir.hash_key(key), not_after=not_after)


NO_LIMITS = ir.RateLimits()
NO_MAP: dict[str, Any] = {}  # the model_limits and mcp_tools of most keys: one shared, never changed (IR is read-only)


def _limits(limits: KeyLimits | None) -> ir.RateLimits:
    """The IR limits; keys with the same limits share one object."""
    if limits is None:
        return NO_LIMITS
    return _rate_limits(limits.rpm, limits.tpm, limits.monthly_tokens, money(limits.monthly_cost))


@lru_cache(maxsize=4096)
def _rate_limits(rpm: int | None, tpm: int | None, monthly_tokens: int | None, monthly_cost: int | None) -> ir.RateLimits:
    return ir.RateLimits(rpm=rpm, tpm=tpm, monthly_tokens=monthly_tokens, monthly_cost=monthly_cost)


def _previous_expiry(text: str | None) -> datetime | None:
    """When the previous key stops working; None (the previous key is not
    honoured) without a valid RFC 3339 time: a typo must not extend a leaked
    key's life, nor take the current key down."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None
