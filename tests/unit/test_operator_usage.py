"""Usage mirrored from proxy replicas, Expired and Exhausted."""

from __future__ import annotations

from datetime import datetime, timezone

from lockgate.operator.usage import exhausted_condition, expired_condition, merge_usage

NOW = datetime(2026, 3, 15, tzinfo=timezone.utc)


def test_per_replica_usage_adds_up() -> None:
    merged = merge_usage([
        {"ns/a": {"month": "2026-03", "tokens": 100, "remaining": 900, "requests": 2}},
        {"ns/a": {"month": "2026-03", "tokens": 50, "remaining": 950, "requests": 1}},
        None,
    ])
    assert merged == {"ns/a": {"month": "2026-03", "tokens": 150, "remaining": 850, "requests": 3, "windows": {}}}


def test_shared_store_reports_are_not_double_counted() -> None:
    report = {"ns/a": {"month": "2026-03", "tokens": 100, "remaining": 900, "requests": 2, "shared": True}}
    assert merge_usage([report, report])["ns/a"]["tokens"] == 100
    same = {"ns/a": {"month": "2026-03", "tokens": 70, "requests": 3, "limits": {"monthly_tokens": 1000}}}
    assert merge_usage([same, same])["ns/a"] == {"month": "2026-03", "tokens": 70, "remaining": 930, "requests": 3,
                                                 "windows": {}}


def test_last_month_reports_are_ignored() -> None:
    merged = merge_usage([{"k": {"month": "2026-02", "tokens": 999}}, {"k": {"month": "2026-03", "tokens": 1}}])
    assert merged["k"]["tokens"] == 1 and merged["k"]["remaining"] is None


def test_expired_and_exhausted() -> None:
    assert expired_condition("2026-03-01T00:00:00Z", NOW).status == "True"
    assert expired_condition("2027-01-01T00:00:00Z", NOW).status == "False"
    assert expired_condition(None, NOW).reason == "NoExpiry"
    assert exhausted_condition({"month": "2026-03", "remaining": 0}).status == "True"
    assert exhausted_condition({"month": "2026-03", "remaining": 5}).status == "False"
    assert exhausted_condition(None).status == "False"


def test_rate_windows_with_a_limit_add_up_across_replicas_or_count_once_when_shared() -> None:
    one = {"ns/a": {"month": "2026-03", "tokens": 5, "requests": 1, "limits": {"rpm": 10, "tpm": None},
                    "window": {"requests": 2, "tokens": 40}}}
    two = {"ns/a": {**one["ns/a"], "tokens": 6, "window": {"requests": 3, "tokens": 50}}}
    assert merge_usage([one, two])["ns/a"]["windows"] == {"rpm": {"used": 5, "limit": 10}}  # no tpm limit: no window
    shared = {"ns/a": {**one["ns/a"], "shared": True}}
    assert merge_usage([shared, shared])["ns/a"]["windows"] == {"rpm": {"used": 2, "limit": 10}}
