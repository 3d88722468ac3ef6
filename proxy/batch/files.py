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
from collections.abc import AsyncIterator, Iterable
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

    async def write_lines(self, file_id: str, lines: Iterable[bytes]) -> int:
        """Writes one JSONL file from whole lines (an output or error file); same name, same bytes."""
        return await asyncio.to_thread(self._write_lines, file_id, list(lines))

    def _write_lines(self, file_id: str, lines: list[bytes]) -> int:
        target = self.path(file_id)
        temp = self.root / f".{file_id}.{secrets.token_hex(4)}.part"
        data = b"".join(line + b"\n" for line in lines)
        with temp.open("wb") as sink:
            sink.write(data)
            _sync(sink)
        os.replace(temp, target)
        return len(data)

    def remove(self, file_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(file_id).unlink()


def _sync(sink: BinaryIO) -> None:
    sink.flush()
    os.fsync(sink.fileno())
