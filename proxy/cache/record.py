"""A stream's client bytes, kept while they go out (the cache stores them once the stream ended cleanly).

`Recorder` wraps the stream's response filter: every event it hands the client
is also appended here, up to the policy's entry size; past it, recording stops
and the stream is simply not stored.
"""

from __future__ import annotations

from lockgate.proxy.providers.base import StreamTranslator, Usage


class Recorder:
    def __init__(self, inner: StreamTranslator, limit: int, first: list[bytes]) -> None:
        self.inner = inner
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.over = False
        for block in first:
            self._keep(block)

    @property
    def usage(self) -> Usage:
        return self.inner.usage

    @usage.setter
    def usage(self, value: Usage) -> None:
        self.inner.usage = value

    @property
    def chunks(self) -> int:
        return int(getattr(self.inner, "chunks", 0))

    def _keep(self, out: bytes) -> None:
        if self.over or not out:
            return
        self.size += len(out)
        if self.size > self.limit:
            self.over, self.parts = True, []
            return
        self.parts.append(out)

    def feed_bytes(self, chunk: bytes) -> bytes:
        out = self.inner.feed_bytes(chunk)
        self._keep(out)
        return out

    def end(self) -> bytes:
        out = self.inner.end()
        self._keep(out)
        return out

    def recorded(self) -> bytes | None:
        return None if self.over else b"".join(self.parts)
