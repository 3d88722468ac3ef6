"""A snapshot compiled from the one it replaces: what did not change is reused, and the result
answers exactly as a snapshot compiled from scratch."""

from __future__ import annotations

from lockgate.api import ir
from lockgate.proxy.auth import authenticate
from lockgate.proxy.snapshot import CompiledSnapshot, compile_snapshot
from tests.gatewayconfig import key, provider, snapshot

PROVIDERS = [provider("ns/p", "openai", "http://127.0.0.1:9", [("gpt-4o", "g")])]
ROUTE = ir.Route(id="ns/r", type="openai", hosts=("api.example",))


def _keys(n: int) -> list[ir.ConsumerKey]:
    return [key(f"ns/k{i}", f"lg-incremental-{i:04d}", models=("gpt-*",)) for i in range(n)]


def _compile(keys: list[ir.ConsumerKey], previous: CompiledSnapshot | None = None,
             providers: list[ir.Provider] = PROVIDERS) -> CompiledSnapshot:
    return compile_snapshot(snapshot(providers, keys, [ROUTE]), previous=previous)


def _same_answers(a: CompiledSnapshot, b: CompiledSnapshot) -> None:
    assert a.keys_by_hash.keys() == b.keys_by_hash.keys()
    for digest, entry in a.keys_by_hash.items():
        other = b.keys_by_hash[digest]
        assert (entry.key, entry.not_after, entry.expires_at, entry.routes, entry.namespace) == \
               (other.key, other.not_after, other.expires_at, other.routes, other.namespace)
        assert (entry.models.pattern if entry.models else None) == (other.models.pattern if other.models else None)
    assert a.providers == b.providers and a.budgets == b.budgets
    assert a.exact_hosts.keys() == b.exact_hosts.keys() and a.namespace_views.keys() == b.namespace_views.keys()


def test_a_key_added_reuses_the_rest() -> None:
    keys = _keys(20)
    first = _compile(keys)
    added = key("ns/new", "lg-incremental-new", models=None)
    second = _compile([*keys, added], previous=first)
    _same_answers(second, _compile([*keys, added]))
    assert second.exact_hosts is first.exact_hosts and second.namespace_views is first.namespace_views
    reused = [d for d, e in second.keys_by_hash.items() if first.keys_by_hash.get(d) is e]
    assert len(reused) == 20  # every unchanged key's entry is the same object
    assert authenticate(second, {"api-key": "lg-incremental-new"}).key.id == "ns/new"


def test_an_edited_or_removed_key_is_recompiled_or_gone() -> None:
    keys = _keys(5)
    first = _compile(keys)
    edited = key("ns/k1", "lg-incremental-0001", models=("other-*",))
    second = _compile([keys[0], edited, *keys[3:]], previous=first)
    _same_answers(second, _compile([keys[0], edited, *keys[3:]]))
    entry = second.keys_by_hash[edited.hashes[0].sha256]
    assert entry.key == edited and entry.models is not None and entry.models.match("other-x")
    assert keys[2].hashes[0].sha256 not in second.keys_by_hash


def test_a_provider_change_or_a_new_namespace_compiles_everything() -> None:
    keys = _keys(3)
    first = _compile(keys)
    more = [*PROVIDERS, provider("ns/q", "openai", "http://127.0.0.1:9", [("gpt-5", "g5")])]
    second = _compile(keys, previous=first, providers=more)
    assert second.namespace_views is not first.namespace_views
    assert "gpt-5" in second.namespace_views["ns"].pool.tiers
    third = _compile([*keys, key("elsewhere/k", "lg-incremental-else")], previous=first)
    assert "elsewhere" in third.namespace_views and "elsewhere" not in first.namespace_views
