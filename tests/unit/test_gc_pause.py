"""The collector is off while a configuration is built, back on after, also when builds overlap."""

from __future__ import annotations

import gc
import threading

import pytest

from lockgate.common.gc_pause import collector_paused


def test_paused_inside_and_restored_after_even_on_error() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("a build that fails")
    assert gc.isenabled()


def test_overlapping_builds_resume_collection_only_when_the_last_ends() -> None:
    inside, release = threading.Event(), threading.Event()

    def other_build() -> None:
        with collector_paused():
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=other_build)
    with collector_paused():
        thread.start()
        assert inside.wait(5)
    assert not gc.isenabled()  # the other build is still under way
    release.set()
    thread.join(5)
    assert gc.isenabled()


def test_freeze_moves_what_exists_out_of_later_collections() -> None:
    gc.unfreeze()
    try:
        with collector_paused(freeze=True):
            built = [{"key": i} for i in range(1000)]
        assert gc.get_freeze_count() >= len(built)
    finally:
        gc.unfreeze()


def test_a_collector_switched_off_by_the_caller_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
