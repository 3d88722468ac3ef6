"""What a request is cached under: pure functions of the request, its policy and its caller.

The exact key is a SHA-256 over the operation, the resolved model and every
body field that changes the answer, with keys sorted; fields that only change
how the answer is delivered or logged (`user`, `stream`, `stream_options`,
`metadata`, `store`) are left out. The store key puts the Route (and so the
namespace) and, in consumer scope, the consumer in front of it, so entries of
two namespaces or two consumers can never meet, and purges are prefix scans.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from lockgate.api.ir import CachePolicy, KeyCache

IGNORED_FIELDS = frozenset({"model", "user", "stream", "stream_options", "metadata", "store"})
PREFIX = "lcache:"
INDEX_PREFIX = "lcindex:"
NAMESPACE_WIDE = "ns"


def request_hash(op: str, model: str, body: Mapping[str, Any]) -> str:
    """The normalised request's hash: equal for requests an upstream would answer alike."""
    rest = {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    return hashlib.sha256(orjson.dumps([op, model, rest], option=orjson.OPT_SORT_KEYS)).hexdigest()


def consumer_tag(consumer: str) -> str:
    """A consumer as a fixed-width key part (no separator or glob character can come from a name)."""
    return "c-" + hashlib.sha256(consumer.encode()).hexdigest()[:24]


def scope_of(policy: CachePolicy, override: KeyCache | None) -> str:
    if override is not None and override.scope is not None:
        return override.scope
    return policy.scope


def owner(scope: str, consumer: str) -> str:
    """Whose entries these are within the Route: the namespace's, or one consumer's."""
    return NAMESPACE_WIDE if scope == "namespace" else consumer_tag(consumer)


def store_key(route_id: str, who: str, digest: str) -> str:
    return f"{PREFIX}{route_id}:{who}:{digest}"


def index_key(route_id: str) -> str:
    return f"{INDEX_PREFIX}{route_id}"


def purge_patterns(route: str | None, namespace: str | None, consumer: str | None) -> tuple[str, str | None]:
    """Glob patterns (Redis SCAN MATCH, fnmatch) of the entries a purge drops, and of the similarity indexes
    (None: they stay, a consumer's purge). Route ids and namespaces are DNS names (no glob characters); a
    consumer is hashed."""
    where = route if route else f"{namespace}/*" if namespace else "*"
    who = consumer_tag(consumer) if consumer is not None else "*"
    return f"{PREFIX}{where}:{who}:*", f"{INDEX_PREFIX}{where}" if consumer is None else None


def cache_control(headers: Mapping[str, str]) -> tuple[bool, bool]:
    """(look up, store) as the request's Cache-Control allows: no-cache skips the lookup, no-store both."""
    value = headers.get("Cache-Control") or headers.get("cache-control")
    if not value:
        return True, True
    tokens = {t.strip().lower().split("=", 1)[0] for t in value.split(",")}
    if "no-store" in tokens:
        return False, False
    return "no-cache" not in tokens, True


def sampled(op: str, body: Mapping[str, Any]) -> bool:
    """Whether the answer is drawn at random: a temperature above 0 (absent: the provider's default, 1)."""
    if op == "embeddings":
        return False
    temperature = body.get("temperature", 1)
    return not isinstance(temperature, (int, float)) or temperature > 0


def bypass_reason(policy: CachePolicy, override: KeyCache | None, op: str, body: Mapping[str, Any]) -> str | None:
    """Why this request is not cached at all, or None."""
    if override is not None and not override.enabled:
        return "key"
    if op not in policy.endpoints:
        return "endpoint"
    if not policy.cache_sampled and sampled(op, body):
        return "sampled"
    return None
