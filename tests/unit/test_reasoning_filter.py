from __future__ import annotations

import itertools

import pytest

from lockgate.proxy.filters.reasoning import ReasoningSplitter, split_reasoning

TEXT = "<think>step one, step two</think>The answer is <b>4</b>."


def _run(pieces: list[str]) -> tuple[str, str]:
    splitter = ReasoningSplitter()
    content, reasoning = "", ""
    for piece in pieces:
        c, r = splitter.feed(piece)
        content, reasoning = content + c, reasoning + r
    c, r = splitter.flush()
    return content + c, reasoning + r


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 100])
def test_any_chunking_gives_the_same_split(size: int) -> None:
    pieces = [TEXT[i:i + size] for i in range(0, len(TEXT), size)]
    assert _run(pieces) == ("The answer is <b>4</b>.", "step one, step two")


def test_every_two_way_cut() -> None:
    for cut in range(len(TEXT) + 1):
        assert _run([TEXT[:cut], TEXT[cut:]]) == ("The answer is <b>4</b>.", "step one, step two"), cut


def test_only_a_possible_tag_prefix_is_held() -> None:
    splitter = ReasoningSplitter()
    assert splitter.feed("hello <th") == ("hello ", "")
    assert splitter.feed("ere") == ("<there", "")
    assert splitter.feed("a < b") == ("a < b", "")


def test_unfinished_reasoning_and_text_without_tags() -> None:
    assert split_reasoning("<think>never closed") == ("", "never closed")
    assert split_reasoning("plain") == ("plain", "")
    assert split_reasoning("a<think>x</think>b<think>y</think>c") == ("abc", "xy")


def test_custom_tags() -> None:
    assert split_reasoning("[R]why[/R]what", "[R]", "[/R]") == ("what", "why")
    cuts = list(itertools.combinations(range(1, 14), 2))
    text = "[R]why[/R]what"
    for a, b in cuts:
        splitter = ReasoningSplitter("[R]", "[/R]")
        out = [splitter.feed(p) for p in (text[:a], text[a:b], text[b:])] + [splitter.flush()]
        assert ("".join(o[0] for o in out), "".join(o[1] for o in out)) == ("what", "why")
