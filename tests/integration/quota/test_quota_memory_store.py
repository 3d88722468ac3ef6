"""The memory store writes the month's usage under the state dir on its own,
so even a proxy that dies without closing keeps (almost all of) it."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from lockgate.proxy.quota import memory_store
from lockgate.proxy.quota.memory_store import FLUSH_INTERVAL, USAGE_FILE, MemoryStore
from lockgate.proxy.quota.plan import BudgetSpec, Group

GROUP = Group("key:ns/k", (), (BudgetSpec("tokens", 1000),))


async def test_usage_is_written_within_the_flush_interval_without_close(tmp_path: Path) -> None:
    store = MemoryStore(60, str(tmp_path))
    (result,) = await store.reserve([GROUP], "r1", 300, "2026-11", 0)
    assert result.refusal is None and result.month == {"tokens": 300}
    await store.settle([GROUP], "r1", "2026-11", 0, delta=-100, used=200, release=False)
    file = tmp_path / USAGE_FILE
    loop = asyncio.get_running_loop()
    end = loop.time() + FLUSH_INTERVAL + 5
    while not file.exists():
        assert loop.time() < end, "usage never written"
        await asyncio.sleep(0.05)
    assert json.loads(file.read_text())["months"] == {"2026-11": {"key:ns/k": {"tokens": 200, "requests": 1}}}
    reborn = MemoryStore(60, str(tmp_path))  # no close(): as after a crash
    counters, _ = await reborn.peek(GROUP, "2026-11")
    assert counters == {"tokens": 200, "requests": 1}
    (refused,) = await reborn.reserve([GROUP], "r2", 801, "2026-11", 0)
    assert refused.refusal is not None and refused.refusal.reason == "budget"
    await store.close()


async def test_a_change_made_while_the_file_is_written_is_written_too(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore(60, str(tmp_path))
    writing, go_on = threading.Event(), threading.Event()
    write = memory_store._write_atomically

    def held_write(path: Path, body: str) -> None:  # the first write waits until the test let it go
        writing.set()
        go_on.wait(10)
        write(path, body)

    monkeypatch.setattr(memory_store, "_write_atomically", held_write)
    await store.reserve([GROUP], "r1", 300, "2026-11", 0)
    assert await asyncio.to_thread(writing.wait, FLUSH_INTERVAL + 5), "usage never written"
    await store.reserve([GROUP], "r2", 200, "2026-11", 0)  # while the first write is under way
    go_on.set()
    file = tmp_path / USAGE_FILE
    loop = asyncio.get_running_loop()
    end = loop.time() + 2 * FLUSH_INTERVAL + 5  # with no further change and no close
    while not file.exists() or json.loads(file.read_text())["months"]["2026-11"]["key:ns/k"]["requests"] < 2:
        assert loop.time() < end, "the change made during the write was not written"
        await asyncio.sleep(0.05)
    assert json.loads(file.read_text())["months"] == {"2026-11": {"key:ns/k": {"tokens": 500, "requests": 2}}}
    await store.close()


async def test_a_new_month_starts_from_zero_and_drops_the_old_one(tmp_path: Path) -> None:
    store = MemoryStore(60, str(tmp_path))
    await store.reserve([GROUP], "r1", 900, "2026-11", 0)
    (result,) = await store.reserve([GROUP], "r2", 900, "2026-12", 0)
    assert result.refusal is None and result.month == {"tokens": 900}
    await store.settle([GROUP], "r1", "2026-11", 0, delta=-900, used=0, release=False)  # late settle: no-op
    await store.close()
    months = json.loads((tmp_path / USAGE_FILE).read_text())["months"]
    assert list(months) == ["2026-12"] and months["2026-12"]["key:ns/k"]["tokens"] == 900
