"""Each strategy as a pure function: given endpoint states and a request, which endpoint and why."""

from __future__ import annotations

from collections import Counter

import pytest

from lockgate.proxy.balancing.choice import eligible
from lockgate.proxy.balancing.engine_metrics import Weights, engine_metrics, engine_score
from lockgate.proxy.balancing.external import picker_body, read_answer
from lockgate.proxy.balancing.least_tokens import Speeds, expected_wait, least_tokens, priors
from lockgate.proxy.balancing.prefix_affinity import load_cap, prefix_affinity, prefix_digest, rendezvous_rank
from lockgate.proxy.balancing.round_robin import least_request, round_robin
from lockgate.proxy.balancing.state import EndpointState, EngineSample, Ewma

A, B, C = "http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1", "http://10.0.0.3:8000/v1"


def state(url: str, in_flight: int = 0, outstanding: int = 0, prompt: int = 0, prefill: float | None = None,
          decode: float | None = None, engine: EngineSample | None = None) -> EndpointState:
    """`outstanding` tokens reserved, `prompt` of them not prefilled; speeds in seconds per token."""
    return EndpointState(url, in_flight, outstanding, prompt, prefill_time=Ewma(value=prefill),
                         decode_time=Ewma(value=decode), engine=engine)


def test_eligible_drops_excluded_and_full_endpoints() -> None:
    states = [state(A, in_flight=2), state(B, in_flight=1), state(C)]
    assert [s.url for s in eligible(states, frozenset({C}), 2)] == [B]
    assert [s.url for s in eligible(states, frozenset(), None)] == [A, B, C]
    assert eligible(states, frozenset({B, C}), 2) == []


def test_round_robin_cycles_through_candidates() -> None:
    states = [state(A), state(B), state(C)]
    picks = [round_robin(states, turn) for turn in range(6)]
    assert [p.url for p in picks if p] == [A, B, C, A, B, C]
    assert picks[0] is not None and picks[0].rule == "round-robin"
    assert round_robin([], 3) is None


def test_least_request_takes_fewest_in_flight_and_rotates_ties() -> None:
    choice = least_request([state(A, 3), state(B, 1), state(C, 2)])
    assert choice is not None and (choice.url, choice.rule) == (B, "least-request")
    tied = [state(A), state(B), state(C)]
    assert {least_request(tied, turn).url for turn in range(3)} == {A, B, C}  # type: ignore[union-attr]


def test_least_tokens_weighs_backlog_by_observed_speed() -> None:
    # A holds fewer tokens, but B decodes four times faster: B finishes sooner.
    slow = state(A, in_flight=1, outstanding=200, prefill=0.0001, decode=0.04)
    fast = state(B, in_flight=3, outstanding=600, prefill=0.0001, decode=0.01)
    choice = least_tokens([slow, fast], prompt_tokens=500, max_tokens=100)
    assert choice is not None and (choice.url, choice.rule) == (B, "least-tokens")
    assert "expected wait 7.050s, next 12.050s" in choice.detail
    prior = priors([slow, fast])
    assert expected_wait(fast, 500, 100, prior) == pytest.approx(500 * 0.0001 + 700 * 0.01)


def test_least_tokens_counts_unprefilled_prompts_at_prefill_speed() -> None:
    # both hold 2000 tokens; on A they are prompts still waiting for prefill (cheap per
    # token), on B they are output still to decode (expensive per token)
    prefilling = state(A, outstanding=2000, prompt=2000, prefill=0.0002, decode=0.01)
    decoding = state(B, outstanding=2000, prompt=0, prefill=0.0002, decode=0.01)
    assert least_tokens([decoding, prefilling], 100, 100).url == A  # type: ignore[union-attr]


def test_least_tokens_rotates_among_idle_endpoints() -> None:
    idle = [state(A), state(B), state(C)]
    assert {least_tokens(idle, 10, 10, turn).url for turn in range(3)} == {A, B, C}  # type: ignore[union-attr]


def test_new_endpoint_borrows_the_others_averages() -> None:
    known = state(A, outstanding=400, prefill=0.0003, decode=0.02)
    new = state(B)
    prior = priors([known, new])
    assert (prior.prefill_time, prior.decode_time) == (0.0003, 0.02)
    assert expected_wait(new, 100, 100, prior) == pytest.approx(100 * 0.0003 + 100 * 0.02)
    assert least_tokens([known, new], 100, 100).url == B  # type: ignore[union-attr]
    assert priors([state(A), state(B)]) == Speeds()


def test_prefix_affinity_sends_a_prefix_to_its_preferred_endpoint() -> None:
    states = [state(A), state(B), state(C)]
    digest = prefix_digest("You are a helpful assistant." * 20, 2048)
    first = prefix_affinity(states, digest, epsilon=0.25)
    assert first is not None and first.rule == "affinity"
    assert first.url == rendezvous_rank(digest, [A, B, C])[0]
    assert all(prefix_affinity(states, digest, 0.25, turn).url == first.url for turn in range(5))  # type: ignore[union-attr]


def test_prefix_digest_only_reads_the_configured_length() -> None:
    assert prefix_digest("system" + "x" * 100, 6) == prefix_digest("system" + "y" * 100, 6)
    assert prefix_digest("system" + "x" * 100, 8) != prefix_digest("system" + "y" * 100, 8)
    assert prefix_digest("", 10) == ""


def test_bounded_load_spills_to_the_next_endpoint_in_the_ranking() -> None:
    digest = prefix_digest("shared system prompt", 2048)
    preferred, second, third = rendezvous_rank(digest, [A, B, C])
    # 7 in flight + this one over 3 endpoints: average 8/3, cap ceil(1.25 * 8/3) = 4
    states = [state(preferred, 4), state(second, 2), state(third, 1)]
    assert load_cap(states, 0.25) == 4
    choice = prefix_affinity(states, digest, 0.25)
    assert choice is not None and (choice.url, choice.rule) == (second, "spill")
    # below the cap it stays
    states = [state(preferred, 3), state(second, 2), state(third, 2)]
    assert prefix_affinity(states, digest, 0.25).url == preferred  # type: ignore[union-attr]


def test_prefix_affinity_without_a_prefix_balances_by_requests() -> None:
    choice = prefix_affinity([state(A, 2), state(B, 0)], "", 0.25)
    assert choice is not None and (choice.url, choice.rule) == (B, "no-prefix")


def test_prefixes_spread_evenly_over_endpoints() -> None:
    urls = [f"http://10.0.1.{i}:8000" for i in range(8)]
    owners = Counter(rendezvous_rank(prefix_digest(f"prompt {n}", 64), urls)[0] for n in range(4000))
    assert len(owners) == 8
    assert max(owners.values()) < 1.25 * 500 and min(owners.values()) > 0.75 * 500


def test_endpoint_churn_moves_about_one_nth_of_prefixes() -> None:
    urls = [f"http://10.0.1.{i}:8000" for i in range(10)]
    digests = [prefix_digest(f"conversation {n}", 64) for n in range(5000)]
    before = {d: rendezvous_rank(d, urls)[0] for d in digests}

    removed = urls[3]
    after_removal = {d: rendezvous_rank(d, [u for u in urls if u != removed])[0] for d in digests}
    moved = [d for d in digests if before[d] != after_removal[d]]
    assert all(before[d] == removed for d in moved)  # only the removed endpoint's prefixes move
    assert 0.07 < len(moved) / len(digests) < 0.13

    added = "http://10.0.1.99:8000"
    after_add = {d: rendezvous_rank(d, urls + [added])[0] for d in digests}
    moved = [d for d in digests if before[d] != after_add[d]]
    assert all(after_add[d] == added for d in moved)  # everything that moves goes to the newcomer
    assert 0.06 < len(moved) / len(digests) < 0.12  # ~1/11


def fresh(waiting: float, running: float, cache: float, in_flight: int = 0, at: float = 100.0) -> EngineSample:
    return EngineSample(waiting, running, cache, at, in_flight)


def test_engine_metrics_prefers_the_shorter_queue() -> None:
    states = [state(A, engine=fresh(5, 8, 0.5)), state(B, engine=fresh(0, 3, 0.5)), state(C, engine=fresh(2, 8, 0.5))]
    choice = engine_metrics(states, "", 100, 100, now=101.0, stale_after=5.0)
    assert choice is not None and (choice.url, choice.rule) == (B, "metrics")
    assert "waiting 0" in choice.detail


def test_engine_metrics_weighs_kv_cache_pressure() -> None:
    full = state(A, engine=fresh(0, 2, 0.98))
    roomy = state(B, engine=fresh(0, 3, 0.10))
    assert engine_metrics([full, roomy], "", 100, 100, 101.0, 5.0).url == B  # type: ignore[union-attr]


def test_engine_metrics_counts_what_was_sent_since_the_scrape() -> None:
    # both reported one running request; since then the gateway sent 3 more to A
    a = state(A, in_flight=4, engine=fresh(0, 1, 0.2, in_flight=1))
    b = state(B, in_flight=1, engine=fresh(0, 1, 0.2, in_flight=1))
    assert engine_score(a, Weights()) > engine_score(b, Weights())
    assert engine_metrics([a, b], "", 100, 100, 101.0, 5.0).url == B  # type: ignore[union-attr]


def test_engine_metrics_keeps_a_prefix_on_its_endpoint_unless_clearly_busier() -> None:
    digest = prefix_digest("shared system prompt", 2048)
    preferred, other = rendezvous_rank(digest, [A, B])
    slightly_busier = [state(preferred, engine=fresh(0, 4, 0.3)), state(other, engine=fresh(0, 3, 0.3))]
    choice = engine_metrics(slightly_busier, digest, 100, 100, 101.0, 5.0)
    assert choice is not None and (choice.url, choice.rule) == (preferred, "metrics-affinity")
    much_busier = [state(preferred, engine=fresh(3, 8, 0.3)), state(other, engine=fresh(0, 3, 0.3))]
    assert engine_metrics(much_busier, digest, 100, 100, 101.0, 5.0).url == other  # type: ignore[union-attr]


def test_engine_metrics_falls_back_to_least_tokens_when_stale() -> None:
    stale = state(A, outstanding=9000, decode=0.01, engine=fresh(0, 0, 0.0, at=90.0))
    current = state(B, outstanding=100, decode=0.01, engine=fresh(9, 9, 0.9, at=100.0))
    choice = engine_metrics([stale, current], "", 100, 100, now=100.5, stale_after=5.0)
    # the metrics say A is idle, but they are 10 s old: least-tokens decides, and picks B
    assert choice is not None and (choice.url, choice.rule) == (B, "stale-fallback")
    assert A in choice.detail
    never_scraped = [state(A), state(B, outstanding=50)]
    assert engine_metrics(never_scraped, "", 1, 1, 0.0, 5.0).rule == "stale-fallback"  # type: ignore[union-attr]


def test_picker_answer_by_header_json_or_nothing() -> None:
    states = [state(A), state(B)]
    header = read_answer({"x-gateway-destination-endpoint": "10.0.0.2:8000"}, None, states)
    assert header is not None and (header.url, header.rule) == (B, "picker-header")
    fallback_list = read_answer({"x-gateway-destination-endpoint": "10.9.9.9:1, 10.0.0.1:8000"}, None, states)
    assert fallback_list is not None and fallback_list.url == A and "fallback 2" in fallback_list.detail
    by_body = read_answer({}, {"endpoint": A}, states)
    assert by_body is not None and (by_body.url, by_body.rule) == (A, "picker")
    assert read_answer({}, {"endpoint": "http://10.9.9.9:8000/v1"}, states) is None
    assert read_answer({}, ["not", "an", "object"], states) is None


def test_picker_body_names_candidates_by_url_and_address() -> None:
    body = picker_body("qwen", "abc", 10, 20, [state(A, in_flight=2, outstanding=30)])
    assert body["prefixDigest"] == "abc" and body["model"] == "qwen"
    assert body["candidates"] == [{"url": A, "address": "10.0.0.1:8000", "inFlight": 2, "outstandingTokens": 30}]
