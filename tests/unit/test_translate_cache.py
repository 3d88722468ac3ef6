"""The translator's cache: a translation with it equals a cold one, edit after edit,
and an edit re-translates only the keys whose inputs changed."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from lockgate.operator.translate import Translation
from lockgate.operator.translate.cache import TranslationCache
from lockgate.operator.translate.translator import translate_objects

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "input.yaml").exists())
NOW = datetime(2026, 1, 1, tzinfo=UTC)
Obj = dict[str, Any]


def _world() -> list[Obj]:
    """Every golden input at once: keys, rotations, expiries, budgets, grants and conflicts."""
    return [doc for case in CASES for doc in yaml.safe_load_all((GOLDEN / case / "input.yaml").read_text()) if doc]


def _same(cached: Translation, cold: Translation) -> None:
    assert cached.config == cold.config
    assert cached.config.hash == cold.config.hash
    assert cached.credentials == cold.credentials
    assert cached.statuses == cold.statuses


def _edit(rng: random.Random, objects: list[Obj], removed: list[Obj]) -> list[Obj]:
    """One random change, made as a new object (raw objects are never changed in place)."""
    objects = list(objects)
    if removed and rng.random() < 0.15:
        objects.insert(rng.randrange(len(objects) + 1), removed.pop())
        return objects
    i = rng.randrange(len(objects))
    obj = copy.deepcopy(objects[i])
    kind, spec, meta = obj.get("kind"), obj.setdefault("spec", {}), obj.setdefault("metadata", {})
    choice = rng.random()
    if choice < 0.1:
        removed.append(objects.pop(i))
        return objects
    if choice < 0.2:  # as the API server would serve it, then a new version of it
        meta["uid"] = f"uid-{meta.get('namespace')}-{meta.get('name')}"
        meta["resourceVersion"] = str(int(meta.get("resourceVersion") or 0) + 1)
    elif kind == "Secret":
        values = obj.setdefault("stringData", {})
        if values and rng.random() < 0.7:
            field = rng.choice(sorted(values))
            other = rng.choice([o for o in objects if o.get("kind") == "Secret"])
            stolen = sorted((other.get("stringData") or {}).values())
            values[field] = rng.choice(stolen) if stolen and rng.random() < 0.3 else f"lg-edited-{rng.random()}"
        else:
            meta.setdefault("annotations", {})["lockgate.io/previous-key-expires"] = rng.choice(
                ["2026-01-02T00:00:00Z", "2025-12-01T00:00:00Z", "soon"])
    elif kind == "ApiKey":
        what = rng.randrange(5)
        if what == 0:
            spec["limits"] = {"rpm": rng.randrange(1, 100)}
        elif what == 1:
            spec["expiresAt"] = rng.choice(["2026-01-01T12:00:00Z", "2025-01-01T00:00:00Z"])
        elif what == 2:
            spec["budgets"] = rng.choice([[], ["platform"], ["euro"], ["missing"]])
        elif what == 3:
            spec["mcpServers"] = rng.choice([[], ["shared/search"], ["github"]])
        else:
            spec["consumer"] = 7  # an invalid spec
    elif kind == "Budget":
        spec["currency"] = rng.choice(["USD", "EUR"])
    elif kind == "MCPServer":
        spec["allowedNamespaces"] = rng.choice([{"from": "All"}, {"from": "Same"}])
    else:
        meta.setdefault("labels", {})["edited"] = str(rng.random())
    objects[i] = obj
    return objects


@pytest.mark.parametrize("seed", range(4))
def test_cached_translation_equals_a_cold_one_after_random_edits(seed: int) -> None:
    rng = random.Random(seed)
    objects, removed, now = _world(), [], NOW
    cache = TranslationCache()
    for _ in range(30):
        _same(translate_objects(objects, now, cache), translate_objects(objects, now))
        objects = _edit(rng, objects, removed)
        if rng.random() < 0.2:
            now += timedelta(hours=rng.choice([1, 13, 24 * 200]))
    assert cache.hits > cache.misses  # most keys came from the cache


def test_an_edit_translates_only_the_key_it_touched() -> None:
    objects = _world()
    cache = TranslationCache()
    first = translate_objects(objects, NOW, cache)
    keys = cache.misses
    assert keys > 10 and cache.hits == 0
    again = translate_objects(objects, NOW, cache)
    assert (cache.misses, cache.hits) == (keys, keys)
    assert again.config.hash == first.config.hash
    i = next(i for i, o in enumerate(objects) if o["kind"] == "ApiKey" and "limits" not in o["spec"])
    edited = copy.deepcopy(objects[i])
    edited["spec"]["limits"] = {"rpm": 7}
    translate_objects([*objects[:i], edited, *objects[i + 1:]], NOW, cache)
    assert (cache.misses, cache.hits) == (keys + 1, 2 * keys - 1)


def test_a_secret_change_retranslates_the_keys_reading_it() -> None:
    objects = _world()
    cache = TranslationCache()
    translate_objects(objects, NOW, cache)
    misses = cache.misses
    i = next(i for i, o in enumerate(objects) if o["kind"] == "Secret" and o["metadata"]["name"] == "keys"
             and o["metadata"]["namespace"] == "team")
    edited = copy.deepcopy(objects[i])
    edited["stringData"]["a"] = "lg-a-new-key-value"
    got = translate_objects([*objects[:i], edited, *objects[i + 1:]], NOW, cache)
    readers = sum(1 for o in objects if o["kind"] == "ApiKey" and o["metadata"]["namespace"] == "team"
                  and (o["spec"].get("existingSecret") or {}).get("name") == "keys")
    assert cache.misses - misses == readers
    alice = next(k for k in got.config.keys if k.id == "team/alice")
    assert alice.hashes[0].sha256 != next(k for k in translate_objects(objects, NOW).config.keys
                                          if k.id == "team/alice").hashes[0].sha256


def test_time_alone_moves_a_key_past_its_expiry() -> None:
    objects = _world()
    cache = TranslationCache()
    before = translate_objects(objects, NOW, cache)
    later = NOW + timedelta(days=3)
    after = translate_objects(objects, later, cache)
    _same(after, translate_objects(objects, later))
    rotated = [k for k in before.config.keys if len(k.hashes) == 2]
    assert rotated and all(len(next(k for k in after.config.keys if k.id == r.id).hashes) == 1 for r in rotated)


def test_objects_that_went_away_are_forgotten() -> None:
    objects = _world()
    cache = TranslationCache()
    translate_objects(objects, NOW, cache)
    assert cache.keys and cache.secrets
    translate_objects([o for o in objects if o["kind"] not in ("ApiKey", "Secret")], NOW, cache)
    assert not cache.keys and not cache.secrets
