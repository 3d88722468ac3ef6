"""Choosing a model by MCP's modelPreferences: the pure scorer and the request's preferences."""

from __future__ import annotations

import pytest

from lockgate.proxy.preferences import (Candidate, PreferenceError, Preferences, hint_rank, parse_preferences, rank,
                                        scores)
from lockgate.proxy.speed import SpeedBook

CHEAP = Candidate("small-chat", price=0.5, intelligence=0.3, ttft=0.8, tokens_per_second=40)
FAST = Candidate("turbo-chat", price=4.0, intelligence=0.5, ttft=0.05, tokens_per_second=300)
SMART = Candidate("large-chat", price=20.0, intelligence=0.95, ttft=1.5, tokens_per_second=20)
ALL = [SMART, FAST, CHEAP]


def names(prefs: Preferences, candidates: list[Candidate] = ALL) -> list[str]:
    return [c.name for c in rank(candidates, prefs)]


def test_each_priority_alone_picks_its_model() -> None:
    assert names(Preferences(cost=1))[0] == "small-chat"
    assert names(Preferences(speed=1))[0] == "turbo-chat"
    assert names(Preferences(intelligence=1))[0] == "large-chat"
    assert names(Preferences(cost=1)) == ["small-chat", "turbo-chat", "large-chat"]


def test_priorities_are_weighed_against_each_other() -> None:
    # cheap and fast both matter: turbo is fastest and mid-priced, small is cheapest but slow
    assert names(Preferences(cost=0.3, speed=1))[0] == "turbo-chat"
    assert names(Preferences(cost=1, speed=0.3))[0] == "small-chat"


def test_no_priority_keeps_the_given_order() -> None:
    assert names(Preferences()) == ["large-chat", "turbo-chat", "small-chat"]
    assert scores(ALL, Preferences()) == [0.0, 0.0, 0.0]


def test_hints_come_first_in_their_order_then_the_priorities() -> None:
    assert names(Preferences(hints=("turbo",), cost=1)) == ["turbo-chat", "small-chat", "large-chat"]
    assert names(Preferences(hints=("LARGE", "small"), speed=1)) == ["large-chat", "small-chat", "turbo-chat"]
    # a hint naming several: the priorities order them
    assert names(Preferences(hints=("chat",), cost=1)) == ["small-chat", "turbo-chat", "large-chat"]
    # a hint naming nothing is skipped
    assert names(Preferences(hints=("claude", "small"), intelligence=1))[0] == "small-chat"
    assert hint_rank("gpt-4o-mini", ("claude", "4o")) == 1 and hint_rank("x", ("y",)) == 1


def test_an_unmeasured_model_is_tried_first_and_an_unknown_price_stands_in_the_middle() -> None:
    new = Candidate("new-chat")
    measured = [Candidate("slow", ttft=2.0, tokens_per_second=10), new, Candidate("quick", ttft=0.1,
                                                                                 tokens_per_second=100)]
    assert names(Preferences(speed=1), measured) == ["new-chat", "quick", "slow"]
    # once measured, it is judged by what it did
    assert names(Preferences(speed=1), [measured[0], Candidate("new-chat", ttft=5.0, tokens_per_second=1),
                                        measured[2]]) == ["quick", "slow", "new-chat"]
    # one measured, one not: the one not measured goes first, to be measured
    assert names(Preferences(speed=1), [Candidate("seen", ttft=0.1), new]) == ["new-chat", "seen"]
    priced = [Candidate("dear", price=10), new, Candidate("cheap", price=1)]
    assert names(Preferences(cost=1), priced) == ["cheap", "new-chat", "dear"]
    assert names(Preferences(speed=1), [Candidate("a"), Candidate("b")]) == ["a", "b"]


def test_equal_values_tie_and_keep_order() -> None:
    same = [Candidate("a", price=1), Candidate("b", price=1)]
    assert scores(same, Preferences(cost=1)) == [0.5, 0.5]
    assert names(Preferences(cost=1), same) == ["a", "b"]


def test_request_preferences_fill_in_from_defaults() -> None:
    route = Preferences(hints=("large",), cost=0.5, speed=0.2)
    asked = Preferences(cost=1)
    assert asked.over(route) == Preferences(hints=("large",), cost=1, speed=0.2, intelligence=None)
    assert Preferences(hints=("x",)).over(route).hints == ("x",)
    assert asked.over(None) is asked


def test_parse_mcp_model_preferences() -> None:
    raw = {"hints": [{"name": "claude-3-sonnet"}, {"name": "claude"}, {}], "costPriority": 0.3, "speedPriority": 1,
           "intelligencePriority": 0}
    assert parse_preferences(raw) == Preferences(("claude-3-sonnet", "claude"), 0.3, 1.0, 0.0)
    assert parse_preferences({}) == Preferences()


@pytest.mark.parametrize("raw", [
    [], {"hints": "claude"}, {"hints": [{"name": 3}]}, {"costPriority": 1.5}, {"speedPriority": -0.1},
    {"intelligencePriority": "high"}, {"costPriority": True}, {"hints": [{"name": "x"}] * 17},
])
def test_malformed_preferences_are_refused(raw: object) -> None:
    with pytest.raises(PreferenceError):
        parse_preferences(raw)


def test_speed_book_keeps_a_recent_mean() -> None:
    book = SpeedBook()
    assert book.of("m").ttft is None
    book.observe("m", 1.0, 100, 2.0)
    assert book.of("m").ttft == 1.0 and book.of("m").tokens_per_second == 50
    for _ in range(20):
        book.observe("m", 0.1, 100, 0.5)
    speed = book.of("m")
    assert speed.ttft is not None and abs(speed.ttft - 0.1) < 0.01
    assert speed.tokens_per_second is not None and abs(speed.tokens_per_second - 200) < 2
    book.observe("m", None, 0, 0.0)  # nothing measured: the means stay
    assert book.of("m").samples == 22 and abs((book.of("m").tokens_per_second or 0) - 200) < 2
