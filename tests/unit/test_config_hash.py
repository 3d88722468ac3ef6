"""The GatewayConfig hash: per part, combined; what changes it and what does not."""

from __future__ import annotations

from lockgate.api import ir
from lockgate.operator.translate.cache import TranslationCache


def _key(i: int, rpm: int | None = None) -> ir.ConsumerKey:
    return ir.ConsumerKey(id=f"ns/k{i}", consumer="c", hashes=(ir.ApiKeyHash(sha256=ir.hash_key(f"lg-{i}")),),
                          limits=ir.RateLimits(rpm=rpm))


def _config(*keys: ir.ConsumerKey) -> ir.GatewayConfig:
    provider = ir.Provider(id="ns/p", type="openai", base_url="http://127.0.0.1:9/v1",
                           models=(ir.ProviderModel(name="m", upstream_model="m"),))
    return ir.GatewayConfig(providers=(provider,), keys=keys)


def test_every_change_of_a_part_changes_the_hash_and_equal_content_hashes_equally() -> None:
    base = _config(_key(1), _key(2))
    assert base.content_hash() == _config(_key(1), _key(2)).content_hash()
    others = [_config(_key(1), _key(2, rpm=5)), _config(_key(2), _key(1)), _config(_key(1)),
              _config(_key(1), _key(2), _key(3)), base.model_copy(update={"providers": ()}),
              base.model_copy(update={"budgets": (ir.Budget(id="ns/b"),)}),
              ir.GatewayConfig(keys=base.keys, routes=(ir.Route(id="ns/r", type="openai", hosts=("a",)),))]
    hashes = {c.content_hash() for c in others}
    assert len(hashes) == len(others) and base.content_hash() not in hashes
    # a part that moves to another field is another config
    assert ir.GatewayConfig(budgets=(ir.Budget(id="ns/b"),)).content_hash() != ir.GatewayConfig().content_hash()
    assert base.with_hash().hash == base.content_hash()


def test_a_huge_limit_still_hashes() -> None:
    assert _config(_key(1, rpm=10**30)).content_hash() != _config(_key(1, rpm=10**29)).content_hash()


def test_the_cache_rehashes_only_new_parts() -> None:
    cache = TranslationCache()
    keys = tuple(_key(i) for i in range(50))
    first = cache.hash_config(_config(*keys))
    assert first.hash == first.content_hash() and cache.parts_hashed == 51
    edited = (*keys[:10], _key(10, rpm=3), *keys[11:])
    second = cache.hash_config(_config(*edited))
    assert second.hash == second.content_hash() != first.hash
    assert cache.parts_hashed == 51 + 2  # the edited key, and the provider (a new object)
    assert len(cache.part_hashes) == 51  # the replaced key's hash is forgotten
