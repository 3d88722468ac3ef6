"""File contents in a directory shared by replicas (a ReadWriteMany volume in Kubernetes).

A file is written under a temporary name and renamed into place, so a reader never sees
half of one; its metadata lives in the state store. Blocking disk work runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class TooLarge(Exception):
    pass


class FileDir:
    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, file_id: str) -> Path:
        if not _ID.match(file_id):
            raise ValueError("not a file id")
        return self.root / file_id

    async def write_stream(self, file_id: str, chunks: AsyncIterator[bytes], max_bytes: int) -> int:
        """Writes what `chunks` yield; raises TooLarge (and keeps nothing) past `max_bytes`."""
        target = self.path(file_id)
        temp = self.root / f".{file_id}.{secrets.token_hex(4)}.part"
        size = 0
        try:
            with temp.open("wb") as sink:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLarge
                    await asyncio.to_thread(sink.write, chunk)
                await asyncio.to_thread(_sync, sink)
            os.replace(temp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        return size

    def writer(self) -> JsonlWriter:
        """A JSONL file written a slice of lines at a time (an output or error file)."""
        return JsonlWriter(self)

    def remove(self, file_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(file_id).unlink()


class JsonlWriter:
    """Lines into a temporary file (blocking: call from a thread), then renamed to its id."""

    def __init__(self, files: FileDir) -> None:
        self.files = files
        self.temp = files.root / f".out-{secrets.token_hex(6)}.part"
        self.count = 0
        self.size = 0
        self._sink: BinaryIO | None = None

    def write(self, lines: list[bytes]) -> None:
        if not lines:
            return
        if self._sink is None:
            self._sink = self.temp.open("wb")
        data = b"".join(line + b"\n" for line in lines)
        self._sink.write(data)
        self.count += len(lines)
        self.size += len(data)

    def commit(self, file_id: str) -> None:
        assert self._sink is not None
        _sync(self._sink)
        self._sink.close()
        os.replace(self.temp, self.files.path(file_id))

    def discard(self) -> None:
        if self._sink is not None:
            self._sink.close()
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()


def _sync(sink: BinaryIO) -> None:
    sink.flush()
    os.fsync(sink.fileno())
