"""Which replica is active: Kopf's peering rule."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from lockgate.operator.peering import is_active

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


def peer(priority: int, seconds_ago: float, lifetime: int = 60) -> dict:
    return {"priority": priority, "lifetime": lifetime, "lastseen": (NOW - timedelta(seconds=seconds_ago)).isoformat()}


def test_highest_live_priority_is_active() -> None:
    peers = {"me": peer(10, 0), "other": peer(5, 1)}
    assert is_active(peers, "me", 10, NOW)
    assert not is_active({**peers, "boss": peer(20, 1)}, "me", 10, NOW)


def test_equal_priorities_pause_everyone_like_kopf() -> None:
    assert not is_active({"me": peer(10, 0), "twin": peer(10, 1)}, "me", 10, NOW)


def test_dead_peers_do_not_count() -> None:
    assert is_active({"boss": peer(20, 61), "me": peer(10, 0)}, "me", 10, NOW)
    assert is_active({"boss": peer(20, 6, lifetime=5)}, "me", 10, NOW)
    assert is_active({}, "me", 0, NOW)
