"""The access log: one JSON line per request, buffered and written in batches.

Going through `logging` for every request costs more than the rest of the
gateway's own work, so lines are collected and written together at most
every `interval` seconds (and at shutdown) to stdout or a file. Lines hold
ids, labels, sizes and timings: never prompt text, never a key.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import BinaryIO


class AccessLog:
    def __init__(self, target: str | None = "-", interval: float = 0.1, max_lines: int = 512) -> None:
        """target: "-" for stdout, a file path (appended to), or None for no access log."""
        self.enabled = target is not None
        self._target = target
        self._stream: BinaryIO | None = None
        self._lines: list[bytes] = []
        self._interval = interval
        self._max_lines = max_lines
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
        self._lines.append(line)
        if len(self._lines) >= self._max_lines:
            self.flush()
        elif self._scheduled is None:
            try:
                self._scheduled = asyncio.get_running_loop().call_later(self._interval, self.flush)
            except RuntimeError:  # no loop: write at once
                self.flush()

    def flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        stream = self._open()
        try:
            stream.write(b"\n".join(lines) + b"\n")
            stream.flush()
        except (OSError, ValueError):  # a closed or full log must not fail requests
            pass

    def close(self) -> None:
        self.flush()
        if self._stream is not None and self._target != "-":
            self._stream.close()
        self._stream = None
