"""Pure quota arithmetic: sliding windows, waits, months, headers, limit plans."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from lockgate.api.ir import ConsumerKey, RateLimits
from lockgate.proxy.quota.budget import budget_fits, month_end, month_of, remaining
from lockgate.proxy.quota.headers import format_reset, ratelimit_headers, retry_after_value
from lockgate.proxy.quota.plan import (BudgetSpec, Group, WindowSpec, consumer_group, local_share,
                                       provider_group, share)
from lockgate.proxy.quota.window import TOO_LARGE, SlidingWindow, WindowState, requests_wait, tokens_wait


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def test_requests_wait_is_until_the_blocking_entry_leaves() -> None:
    # 3 per 60 s; entries at 10, 20, 30; at t=40 the next fits when the one at 10 leaves: 30 s.
    assert requests_wait([10, 20, 30], 40, 60, 3) == 30
    assert requests_wait([10, 20], 40, 60, 3) == 0
    # over the limit (a limit lowered meanwhile): the 2nd oldest must leave too
    assert requests_wait([10, 20, 30], 40, 60, 2) == 40
    assert requests_wait([], 0, 60, 0) == TOO_LARGE


def test_tokens_wait_frees_just_enough() -> None:
    entries = [(10.0, 300), (20.0, 300), (30.0, 300)]
    # tpm 1000, 900 used, need 400: 300 more must leave -> the entry at 10 -> wait 30 s at t=40
    assert tokens_wait(entries, 900, 40, 60, 1000, 400) == 30
    # need 700: two entries must leave -> 40 s
    assert tokens_wait(entries, 900, 40, 60, 1000, 700) == 40
    assert tokens_wait(entries, 900, 40, 60, 1000, 100) == 0
    assert tokens_wait(entries, 900, 40, 60, 1000, 1001) == TOO_LARGE


def test_sliding_window_admits_exactly_the_limit_per_window() -> None:
    w = SlidingWindow(60)
    admitted = 0
    for i in range(10):
        if w.wait(float(i), 5, None, 1) is None:
            w.add(float(i), f"r{i}", 1)
            admitted += 1
    assert admitted == 5
    refused = w.wait(10.0, 5, None, 1)
    assert refused == ("requests", 50.0)  # the entry at t=0 leaves at t=60
    assert w.wait(60.0, 5, None, 1) is None  # exactly one window later it has left


def test_sliding_window_settle_and_remove_adjust_tokens() -> None:
    w = SlidingWindow(60)
    w.add(0, "a", 500)
    w.add(1, "b", 500)
    assert w.wait(2, None, 1000, 100) == ("tokens", 58)
    w.settle("a", 200)  # the answer used less than reserved: the rest is free again
    assert w.total == 700 and w.wait(2, None, 1000, 300) is None
    w.remove("b")
    assert w.total == 200
    w.settle("gone", 5)  # settling after the entry left the window changes nothing
    assert w.total == 200


def test_window_state_reports_load_and_reset() -> None:
    w = SlidingWindow(60)
    w.add(10, "a", 7)
    w.add(20, "b", 3)
    assert w.state(30, 5, 100) == WindowState(5, 100, 2, 10, 40, 40)
    assert w.state(75, 5, 100) == WindowState(5, 100, 1, 3, 5, 5)


def test_months_are_calendar_months_in_utc() -> None:
    assert month_of(ts("2026-11-30T23:59:59")) == "2026-11"
    assert month_of(ts("2026-12-01T00:00:00")) == "2026-12"
    assert month_end(ts("2026-11-15T12:00:00")) == ts("2026-12-01T00:00:00")
    assert month_end(ts("2026-12-31T23:00:00")) == ts("2027-01-01T00:00:00")
    assert budget_fits(90, 10, 100) and not budget_fits(91, 10, 100) and budget_fits(10**9, 1, None)
    assert remaining(120, 100) == 0 and remaining(5, None) is None


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (0.12, "120ms"), (0.0004, "1ms"), (1, "1s"), (1.2, "2s"), (59.5, "1m0s"),
    (360, "6m0s"), (3723, "1h2m3s"),
])
def test_reset_uses_openai_duration_format(seconds: float, text: str) -> None:
    assert format_reset(seconds) == text


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    assert retry_after_value(0.2) == "1" and retry_after_value(2.01) == "3" and retry_after_value(30) == "30"


def test_headers_come_from_the_tightest_window() -> None:
    key_wide = WindowState(600, 200000, 10, 1000, 30, 30)
    per_model = WindowState(60, 40000, 59, 39000, 0.5, 0.5)
    h = ratelimit_headers([key_wide, per_model])
    assert h == {
        "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "500ms",
        "x-ratelimit-limit-tokens": "40000", "x-ratelimit-remaining-tokens": "1000",
        "x-ratelimit-reset-tokens": "500ms",
    }
    only_rpm = ratelimit_headers([WindowState(10, None, 3, 0, 6, 6)])
    assert "x-ratelimit-limit-tokens" not in only_rpm and only_rpm["x-ratelimit-remaining-requests"] == "7"
    assert ratelimit_headers([]) == {}


def key(**kw: object) -> ConsumerKey:
    return ConsumerKey(id="ns/k", consumer="c", hashes=(), **kw)  # type: ignore[arg-type]


def test_consumer_group_has_key_and_model_windows_and_budgets() -> None:
    k = key(limits=RateLimits(rpm=600, tpm=200000, monthly_tokens=5000),
            model_limits={"gpt-4o": RateLimits(rpm=60, monthly_tokens=100), "qwen*": RateLimits(tpm=9)})
    g = consumer_group(k, "gpt-4o")
    assert g.tag == "key:ns/k"
    assert g.windows == (WindowSpec("all", 600, 200000), WindowSpec("model:gpt-4o", 60, None))
    assert g.budgets == (BudgetSpec("tokens", 5000), BudgetSpec("model:gpt-4o", 100))
    assert consumer_group(k, "qwen-7b").windows[1] == WindowSpec("model:qwen-7b", None, 9)
    unlimited = consumer_group(key(), "m")
    assert unlimited.windows == () and unlimited.budgets == (BudgetSpec("tokens", None), BudgetSpec("model:m", None))


def test_provider_group_only_when_limited() -> None:
    assert provider_group("ns/p", "m", RateLimits()) is None
    g = provider_group("ns/p", "m", RateLimits(rpm=5))
    assert g is not None and g.tag == "provider:ns/p/m" and g.windows == (WindowSpec("provider", 5, None),)


def test_local_share_divides_rates_and_what_is_left_of_budgets() -> None:
    assert share(10, 3) == 3 and share(2, 3) == 0 and share(0, 3) == 0 and share(None, 3) is None
    g = Group("key:x", (WindowSpec("all", 90, 3000),), (BudgetSpec("tokens", 1000), BudgetSpec("model:m", None)))
    local = local_share(g, 3, {"tokens": 400})
    assert local.windows == (WindowSpec("all", 30, 1000),)
    assert local.budgets == (BudgetSpec("tokens", 200), BudgetSpec("model:m", None))


def test_the_output_reservation_without_max_tokens_yields_to_the_tightest_tpm() -> None:
    from lockgate.proxy.estimate import Estimate, estimate_request

    assert Estimate(100, 50).reserved(4096, (120,)) == 150  # the client's max_tokens is honoured (and refused)
    assert Estimate(100, None).reserved(4096) == 4196
    assert Estimate(100, None).reserved(4096, (None, 1000, 600)) == 600  # the tightest limit wins
    assert Estimate(100, None).reserved(300, (1000,)) == 400  # a cap below the limit stays
    assert Estimate(700, None).reserved(4096, (600,)) == 700  # a prompt larger than the limit stays too large
    assert estimate_request({"messages": "x" * 400}) == Estimate(len('{"messages":""}') // 4 + 100, None)
    assert estimate_request({"max_completion_tokens": 7}, 40) == Estimate(10, 7)


def test_a_repeated_admission_keeps_its_place_and_count_in_a_window() -> None:
    from lockgate.proxy.quota.window import SlidingWindow

    w = SlidingWindow(60)
    w.add(0.0, "a", 300)
    w.settle("a", 0)  # a failover: the first provider used nothing
    assert w.wait(1.0, 1, 1000, 300) == ("requests", 59.0)  # a new request does not fit rpm 1
    assert w.wait(1.0, 1, 1000, 300, repeat_of="a") is None  # the same request again does
    w.add_again(1.0, "a", 300)
    assert (len(w), w.total, w.admitted_at("a")) == (1, 300, 0.0)
    assert w.wait(1.0, None, 1000, 800) == ("tokens", 59.0)  # its tokens count for others
    assert w.wait(1.0, None, 1000, 1000, repeat_of="a") is None  # and are replaced, not added, for itself


def test_the_default_output_reservation_flag_reaches_the_proxy_settings() -> None:
    import argparse

    from lockgate.cli.serving import add_serving_arguments, settings_from

    parser = argparse.ArgumentParser()
    add_serving_arguments(parser)
    assert settings_from(parser.parse_args([])).default_output_reservation == 4096
    assert settings_from(parser.parse_args(["--default-output-reservation", "256"])).default_output_reservation == 256
