"""Monthly token budgets: calendar months in UTC, input plus output tokens."""

from __future__ import annotations

from datetime import datetime, timezone


def month_of(now: float) -> str:
    """'YYYY-MM' of a UNIX time, in UTC."""
    return datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m")


def month_start(now: float) -> float:
    """UNIX time when the UTC month containing `now` began."""
    t = datetime.fromtimestamp(now, timezone.utc)
    return datetime(t.year, t.month, 1, tzinfo=timezone.utc).timestamp()


def month_end(now: float) -> float:
    """UNIX time when the UTC month containing `now` ends."""
    t = datetime.fromtimestamp(now, timezone.utc)
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return datetime(year, month, 1, tzinfo=timezone.utc).timestamp()


def budget_fits(used: int, cost: int, limit: int | None) -> bool:
    return limit is None or used + cost <= limit


def remaining(used: int, limit: int | None) -> int | None:
    return None if limit is None else max(0, limit - used)
