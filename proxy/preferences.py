"""Choosing a model by preferences: MCP's `modelPreferences` scored over candidate models.

Pure: the caller gives each candidate's price, declared intelligence and
measured speed (`Candidate`) and the wanted `Preferences`; `rank` returns the
candidates best first. Hints come first, in their order (a hint is a
substring of a model name, case-insensitive; the candidates matching the
first hint lead, then those matching the second, ...); within a hint group,
and for the candidates no hint names, the priorities decide: a weighted mean
of the candidate's standing on price (cheaper is better), speed (lower time
to first token, more output tokens per second) and intelligence, each scaled
over the candidates in hand to 0..1 by ratio (a log scale). A price or an
intelligence nobody declared stands in the middle; a speed not yet measured
stands at the top, so a model is tried once before its pace is judged (and
then judged by what it did). A lone value has nothing to be compared with and
stands in the middle too. Ties keep the order the candidates were given in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import math
from dataclasses import dataclass
from typing import Any

UNKNOWN = 0.5  # the standing of a value nobody knows
FLOOR = 1e-3  # values below (a free model, an instant answer) count as this much


@dataclass(frozen=True)
class Preferences:
    """What a request (or its Route, by default) wants; priorities in 0..1, None = not said."""

    hints: tuple[str, ...] = ()
    cost: float | None = None
    speed: float | None = None
    intelligence: float | None = None

    def over(self, defaults: Preferences | None) -> Preferences:
        """These preferences, with what they leave unsaid taken from `defaults`."""
        if defaults is None:
            return self
        return Preferences(self.hints or defaults.hints,
                           self.cost if self.cost is not None else defaults.cost,
                           self.speed if self.speed is not None else defaults.speed,
                           self.intelligence if self.intelligence is not None else defaults.intelligence)


@dataclass(frozen=True)
class Candidate:
    name: str
    price: float | None = None  # per million tokens, input and output together
    intelligence: float | None = None  # declared, 0..1
    ttft: float | None = None  # seconds, measured recently
    tokens_per_second: float | None = None  # output tokens per second, measured recently


class PreferenceError(ValueError):
    """Preferences that are not MCP's `modelPreferences` shape."""


def parse_preferences(raw: Any) -> Preferences:
    """MCP's `modelPreferences` object (`hints: [{name}]`, `costPriority`, `speedPriority`,
    `intelligencePriority`), as a request sends it; PreferenceError when malformed."""
    if not isinstance(raw, Mapping):
        raise PreferenceError("modelPreferences must be an object")
    hints_raw = raw.get("hints") or []
    if not isinstance(hints_raw, list) or len(hints_raw) > 16:
        raise PreferenceError("modelPreferences.hints must be a list of at most 16 {name} objects")
    hints: list[str] = []
    for hint in hints_raw:
        name = hint.get("name") if isinstance(hint, Mapping) else None
        if name is not None and (not isinstance(name, str) or len(name) > 256):
            raise PreferenceError("a hint's name must be a string of at most 256 characters")
        if name:
            hints.append(name)
    return Preferences(tuple(hints), _priority(raw, "costPriority"), _priority(raw, "speedPriority"),
                       _priority(raw, "intelligencePriority"))


def _priority(raw: Mapping[str, Any], name: str) -> float | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise PreferenceError(f"modelPreferences.{name} must be a number from 0 to 1")
    return float(value)


def hint_rank(name: str, hints: Sequence[str]) -> int:
    """The index of the first hint naming `name` (a case-insensitive substring), or len(hints)."""
    lowered = name.lower()
    for index, hint in enumerate(hints):
        if hint.lower() in lowered:
            return index
    return len(hints)


def _standing(raw: Sequence[float | None], higher_is_better: bool, unknown: float = UNKNOWN) -> list[float]:
    """Each value scaled over the known ones to 0..1 (1 = best) on a log scale (prices and paces span
    orders of magnitude: what counts is their ratio); unknown values stand at `unknown`."""
    values = [None if v is None else math.log(max(v, FLOOR)) for v in raw]
    known = [v for v in values if v is not None]
    low, high = (min(known), max(known)) if known else (0.0, 0.0)
    out = []
    for value in values:
        if value is None:
            out.append(unknown)
        elif high == low:
            out.append(UNKNOWN)
        else:
            scaled = (value - low) / (high - low)
            out.append(scaled if higher_is_better else 1.0 - scaled)
    return out


def scores(candidates: Sequence[Candidate], prefs: Preferences) -> list[float]:
    """Each candidate's weighted standing on the priorities (0 when no priority is given)."""
    weights = (prefs.cost or 0.0, prefs.speed or 0.0, prefs.intelligence or 0.0)
    total = sum(weights)
    if total <= 0:
        return [0.0] * len(candidates)
    price = _standing([c.price for c in candidates], higher_is_better=False)
    ttft = _standing([c.ttft for c in candidates], higher_is_better=False, unknown=1.0)
    rate = _standing([c.tokens_per_second for c in candidates], higher_is_better=True, unknown=1.0)
    speed = [(a + b) / 2 for a, b in zip(ttft, rate)]
    smart = [UNKNOWN if c.intelligence is None else c.intelligence for c in candidates]
    return [(weights[0] * price[i] + weights[1] * speed[i] + weights[2] * smart[i]) / total
            for i in range(len(candidates))]


def rank(candidates: Sequence[Candidate], prefs: Preferences) -> list[Candidate]:
    """The candidates best first: by hint (in order), then by score, then as given."""
    score = scores(candidates, prefs)
    order = sorted(range(len(candidates)),
                   key=lambda i: (hint_rank(candidates[i].name, prefs.hints), -score[i], i))
    return [candidates[i] for i in order]
