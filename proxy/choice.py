"""A virtual model chosen by preferences: its candidates filtered, described, then ranked.

Filters leave out a candidate the key may not use, one whose context window
is smaller than the request needs, one nothing in the pool serves, and one
whose every fixed-URL provider is ejected after failures. The rest are
described by their metadata (price, declared intelligence) and their measured
speed, and ranked by `preferences.rank`; the caller plans the providers of
each in that order, so the first is tried first and the others are fallbacks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from lockgate.api.ir import ModelPreferences, ProviderModel, Provider
from lockgate.proxy.auth import may_use_model
from lockgate.proxy.errors import ApiError, bad_request, forbidden, no_upstream
from lockgate.proxy.preferences import Candidate, PreferenceError, Preferences, parse_preferences, rank
from lockgate.proxy.snapshot import KeyEntry, Pool
from lockgate.proxy.speed import SpeedBook

HEADER = "x-lockgate-model-preferences"  # the request field's stand-in for clients that cannot add body fields
FIELD = "model_preferences"


def defaults_of(prefs: ModelPreferences | None) -> Preferences | None:
    if prefs is None:
        return None
    return Preferences(prefs.hints, prefs.cost_priority, prefs.speed_priority, prefs.intelligence_priority)


def requested(body: dict[str, Any], headers: Mapping[str, str]) -> Preferences | None:
    """The request's own preferences: the body field (removed: it is the gateway's), else the header."""
    raw = body.pop(FIELD, None)
    source = f"'{FIELD}'"
    if raw is None and headers.get(HEADER):
        source = f"the {HEADER} header"
        try:
            raw = orjson.loads(headers[HEADER])
        except ValueError:
            raise bad_request(f"{source} is not JSON.", param=FIELD) from None
    if raw is None:
        return None
    try:
        return parse_preferences(raw)
    except PreferenceError as exc:
        raise bad_request(f"Invalid {source}: {exc}.", param=FIELD) from None


def describe(name: str, model: ProviderModel, speeds: SpeedBook) -> Candidate:
    """A model as the scorer sees it: its prices (input and output per million tokens, together), its
    declared intelligence, its measured speed."""
    pricing = model.pricing
    price = None if pricing is None else pricing.input + pricing.output
    speed = speeds.of(name)
    return Candidate(name, price, model.intelligence, speed.ttft, speed.tokens_per_second)


def preference_order(names: Sequence[str], prefs: Preferences, pool: Pool, entry: KeyEntry,
                     ejected: Callable[[Provider], bool], speeds: SpeedBook, needed_tokens: int) -> list[str]:
    """The usable candidates among `names`, best first; ApiError when none is usable."""
    kept: list[Candidate] = []
    refused: set[str] = set()
    for name in dict.fromkeys(names):
        targets = [t for tier in pool.tiers.get(name, ()) for t in tier]
        if not targets:
            refused.add("unserved")
        elif not may_use_model(entry, name):
            refused.add("key")
        elif _too_small(targets[0].model, needed_tokens):
            refused.add("context")
        elif all(ejected(t.provider) for t in targets):
            refused.add("ejected")
        else:
            kept.append(describe(name, targets[0].model, speeds))
    if not kept:
        raise _none_left(refused)
    return [c.name for c in rank(kept, prefs)]


def _too_small(model: ProviderModel, needed_tokens: int) -> bool:
    return model.context_window is not None and needed_tokens > model.context_window


def _none_left(refused: set[str]) -> ApiError:
    if refused == {"key"}:
        return forbidden("This API key may use none of the models this one chooses among.", code="model_not_allowed")
    if refused <= {"context", "key"}:
        return bad_request("The request is larger than the context window of every model this one chooses among.",
                           code="context_length_exceeded", param="messages")
    return no_upstream("No model this one chooses among is available.")
