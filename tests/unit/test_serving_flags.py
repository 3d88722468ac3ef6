"""Serving flags shared by `lockgate run`, `lockgate proxy` and the quickstart."""

from __future__ import annotations

import argparse

import pytest

from lockgate.cli.serving import add_serving_arguments, settings_from


def _settings(argv: list[str]) -> object:
    parser = argparse.ArgumentParser()
    add_serving_arguments(parser)
    return settings_from(parser.parse_args(argv))


def test_quota_store_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A Redis URL may carry a password: the chart passes it in the environment,
    # where it stays out of the process list.
    monkeypatch.setenv("LOCKGATE_QUOTA_STORE_URL", "redis://:secret@127.0.0.1:6390/0")
    assert getattr(_settings([]), "quota_store") == "redis://:secret@127.0.0.1:6390/0"


def test_quota_store_flag_wins_and_memory_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCKGATE_QUOTA_STORE_URL", raising=False)
    assert getattr(_settings([]), "quota_store") == "memory"
    monkeypatch.setenv("LOCKGATE_QUOTA_STORE_URL", "redis://127.0.0.1:6390/0")
    assert getattr(_settings(["--quota-store", "memory"]), "quota_store") == "memory"


def test_the_cache_store_follows_the_quota_store_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCKGATE_CACHE_STORE_URL", raising=False)
    monkeypatch.setenv("LOCKGATE_QUOTA_STORE_URL", "redis://127.0.0.1:6390/0")
    assert getattr(_settings([]), "cache").store == "redis://127.0.0.1:6390/0"
    assert getattr(_settings(["--quota-store", "memory"]), "cache").store == "memory"
    assert getattr(_settings(["--cache-store", "memory"]), "cache").store == "memory"
    monkeypatch.setenv("LOCKGATE_CACHE_STORE_URL", "redis://127.0.0.1:6391/2")
    settings = getattr(_settings(["--cache-memory-bytes", "1024"]), "cache")
    assert (settings.store, settings.memory_bytes) == ("redis://127.0.0.1:6391/2", 1024)
def test_slot_lease_defaults_to_ten_seconds_and_is_a_flag() -> None:
    assert getattr(_settings([]), "slot_lease") == 10.0
    assert getattr(_settings(["--slot-lease", "2.5"]), "slot_lease") == 2.5
