"""The access log's buffer: whole lines, in order, written when full, at the interval and at close."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lockgate.proxy.accesslog import AccessLog


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")


async def test_lines_wait_for_the_interval_then_go_out_together(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path), interval=0.0)
    log.write(b'{"n":1}')
    log.write(b'{"n":2}')
    assert not path.exists() or path.read_bytes() == b""  # buffered
    for _ in range(3):  # the interval's timer runs on a later turn of the loop
        await asyncio.sleep(0)
    assert lines(path) == [b'{"n":1}', b'{"n":2}', b""]
    log.close()


async def test_a_full_buffer_is_written_at_once_and_long_lines_stay_whole(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path), interval=3600, buffer_bytes=32)
    written = [b"%02d-" % i + b"x" * 6 for i in range(10)]  # 10 bytes each, with the newline 11
    for line in written:
        log.write(line)
    assert len(lines(path)) - 1 == 9  # all but the last went out as the buffer filled, without the timer
    long = b"L" * 100  # over the buffer's size: written on its own, after what was waiting
    log.write(long)
    log.write(b"tail")
    log.close()
    assert lines(path) == [*written, long, b"tail", b""]


def test_without_a_loop_each_line_is_written_at_once(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path))
    log.write(b"one")
    assert path.read_bytes() == b"one\n"
    log.write(b"two")
    assert path.read_bytes() == b"one\ntwo\n"
    log.close()


def test_a_failing_target_does_not_raise(tmp_path: Path) -> None:
    log = AccessLog(str(tmp_path / "missing-dir" / "access.log"))
    try:
        log.write(b"lost")
    except OSError:
        raise AssertionError("a log that cannot be opened must not fail the request") from None
