"""The access log: one JSON line per request, buffered and written in batches.

Going through `logging` for every request costs more than the rest of the
gateway's own work, so lines are collected and written together at most
every `interval` seconds (and at shutdown) to stdout or a file. Lines hold
ids, labels, sizes and timings: never prompt text, never a key.

Lines are copied into one buffer allocated once, not kept as a list of
objects: a few hundred lines of half a kilobyte each, alive until the next
write and freed all at once, made the C allocator hand the top of its heap
back to the kernel after every write and fault it in again page by page
during the next batch (measured: a page fault for every few requests).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import BinaryIO

BUFFER_BYTES = 256 * 1024  # written out when full, else at the interval


class AccessLog:
    def __init__(self, target: str | None = "-", interval: float = 0.1, buffer_bytes: int = BUFFER_BYTES) -> None:
        """target: "-" for stdout, a file path (appended to), or None for no access log."""
        self.enabled = target is not None
        self._target = target
        self._stream: BinaryIO | None = None
        self._size = buffer_bytes
        self._buffer = bytearray()  # `_size` bytes from the first line on
        self._used = 0
        self._interval = interval
        self._scheduled: asyncio.TimerHandle | None = None

    def _open(self) -> BinaryIO:
        if self._stream is None:
            if self._target == "-":
                self._stream = sys.stdout.buffer
            else:
                assert self._target is not None
                self._stream = open(os.path.expanduser(self._target), "ab")  # noqa: SIM115 - kept open for the process
        return self._stream

    def write(self, line: bytes) -> None:
        start = self._used
        end = start + len(line) + 1
        if end > len(self._buffer):
            if not self._buffer:
                self._buffer = bytearray(self._size)
            if start:
                self.flush()
                start, end = 0, len(line) + 1
            if end > len(self._buffer):  # a line longer than the buffer goes out on its own
                self._out(line + b"\n")
                return
        buffer = self._buffer
        buffer[start:end - 1] = line  # same length: a copy, never a resize
        buffer[end - 1] = 10  # "\n"
        self._used = end
        if self._scheduled is None:
            try:
                self._scheduled = asyncio.get_running_loop().call_later(self._interval, self.flush)
            except RuntimeError:  # no loop: write at once
                self.flush()

    def flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        if not self._used:
            return
        used, self._used = self._used, 0
        with memoryview(self._buffer) as view:
            self._out(view[:used])

    def _out(self, data: bytes | memoryview) -> None:
        try:
            stream = self._open()
            stream.write(data)
            stream.flush()
        except (OSError, ValueError):  # a log that cannot be opened, a closed or full one: never fails requests
            pass

    def close(self) -> None:
        self.flush()
        if self._stream is not None and self._target != "-":
            self._stream.close()
        self._stream = None
