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


def test_slot_lease_defaults_to_ten_seconds_and_is_a_flag() -> None:
    assert getattr(_settings([]), "slot_lease") == 10.0
    assert getattr(_settings(["--slot-lease", "2.5"]), "slot_lease") == 2.5
