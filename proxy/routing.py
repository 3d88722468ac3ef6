"""Choosing upstreams: the ordered list of (provider, model) targets to try.

Pure functions over the compiled snapshot. An alias expands to its targets in
weighted-random order, then its fallbacks in order; each model expands to its
provider tiers (priority 0 first), weighted-random inside a tier.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

from lockgate.api.ir import Alias
from lockgate.proxy.snapshot import Target

T = TypeVar("T")


def weighted_order(items: Sequence[T], weights: Sequence[int], rng: random.Random) -> list[T]:
    """Items in random order where heavier items tend to come first (weight 0 comes last)."""
    if len(items) <= 1:
        return list(items)
    # Efraimidis-Spirakis: sort by u ** (1 / w), descending.
    keyed = [(rng.random() ** (1.0 / w) if w > 0 else -1.0, i) for i, w in enumerate(weights)]
    keyed.sort(reverse=True)
    return [items[i] for _, i in keyed]


def expand_alias(alias: Alias, rng: random.Random) -> list[str]:
    models = weighted_order([t.model for t in alias.targets], [t.weight for t in alias.targets], rng)
    for fallback in alias.fallbacks:
        if fallback not in models:
            models.append(fallback)
    return models


def order_targets(tiers: Sequence[Sequence[Target]], rng: random.Random) -> list[Target]:
    ordered: list[Target] = []
    for tier in tiers:
        ordered.extend(weighted_order(tier, [t.provider.weight for t in tier], rng))
    return ordered


def plan(models: Sequence[str], tiers_by_model: dict[str, tuple[tuple[Target, ...], ...]],
         rng: random.Random) -> list[Target]:
    """Every target to try for these models, in order, each (provider, model) once."""
    seen: set[tuple[str, str]] = set()
    out: list[Target] = []
    for model in models:
        for target in order_targets(tiers_by_model.get(model, ()), rng):
            key = (target.provider.id, target.model.name)
            if key not in seen:
                seen.add(key)
                out.append(target)
    return out
