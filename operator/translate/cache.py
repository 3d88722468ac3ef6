"""Memoized outcomes between translations, so an edit re-translates only what it touched.

A `TranslationCache` handed to `translate_objects` keeps, per object, what the
last translation decided and the inputs that decided it:

- the raw object's identity: `metadata.uid` and `metadata.resourceVersion`
  when both are present (objects from the API server), else its content
  (objects from files, compared by value; raw objects are read-only once
  handed over, as the manifest cache and the operator's index hand them out);
- for an ApiKey, also the Secret it reads (decoded content), the Budgets and
  MCPServer grants it names, and on which side of each instant that matters
  (its expiry, its previous key's end) `now` falls.

Anything else a key's outcome depends on is checked every pass (a key hash
claimed twice), and statuses are built anew with the pass' `now`, so a cached
translation equals a cold one. Objects that went away are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lockgate.api import ir
from lockgate.api.grants import AllowedNamespaces
from lockgate.operator.translate.bundle import SecretData, identity
from lockgate.operator.translate.conditions import NotReady, Rejected


@dataclass(frozen=True, slots=True)
class KeyInputs:
    """What a translated ApiKey depends on beyond its own object, as seen when it was translated."""

    secret: SecretData | None
    budgets: tuple[ir.Budget | None, ...]
    grants: tuple[AllowedNamespaces | None, ...]
    after: tuple[bool, ...]  # now >= each of `instants`


@dataclass(frozen=True, slots=True)
class KeyRefs:
    """Where to look the inputs up: the Secret, Budget ids, MCPServer ids and instants the spec names."""

    secret: tuple[str, str] | None
    budgets: tuple[str, ...] = ()
    servers: tuple[str, ...] = ()
    instants: tuple[datetime, ...] = ()


@dataclass(frozen=True, slots=True)
class KeyResult:
    """An ApiKey's outcome: the IR key (budgets included) or why not; and its status' parts."""

    key: ir.ConsumerKey | None
    not_ready: NotReady | None
    fields: Mapping[str, object]
    unresolved: Rejected | None
    rejected: Rejected | None  # set: the key is left out (the rest is unused)


@dataclass(slots=True)
class KeyEntry:
    token: object
    generation: int | None
    refs: KeyRefs | None  # None: the spec is invalid (nothing else matters)
    inputs: KeyInputs | None
    result: KeyResult


@dataclass(slots=True)
class ParsedEntry:
    token: object
    result: Any  # the validated resource, or the InvalidSpec message


class TranslationCache:
    """Outcomes by object; pass the same instance to every `translate_objects` call of one source."""

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], KeyEntry] = {}
        self.parsed: dict[tuple[str, str, str], ParsedEntry] = {}
        self.secrets: dict[tuple[str, str], tuple[object, SecretData]] = {}
        self.hits = 0  # ApiKeys taken from the cache (for tests and benchmarks)
        self.misses = 0  # ApiKeys translated

    def prune(self, keys: set[tuple[str, str]], parsed: set[tuple[str, str, str]],
              secrets: set[tuple[str, str]]) -> None:
        """Forgets the objects a pass did not see."""
        for name, seen in ((self.keys, keys), (self.parsed, parsed), (self.secrets, secrets)):
            memo: dict[Any, Any] = name
            if len(memo) != len(seen) or any(k not in seen for k in memo):
                for gone in [k for k in memo if k not in seen]:
                    del memo[gone]
