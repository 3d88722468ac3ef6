"""The SSE splitter against hostile streams: an event that never ends is capped and never rescanned."""

from __future__ import annotations

import time

import pytest

from lockgate.proxy.sse import SSESplitter
from lockgate.proxy.upstream import UpstreamError


def test_events_split_across_chunks_and_line_endings() -> None:
    splitter = SSESplitter()
    assert splitter.feed(b"data: 1\n\ndata: 2\n") == [b"data: 1"]
    assert splitter.feed(b"\ndata: 3\r") == [b"data: 2"]
    assert splitter.feed(b"\n") == []  # CR LF split over two chunks is one line end
    assert splitter.feed(b"\r\n") == [b"data: 3"]
    assert not splitter.pending
    assert splitter.feed(b"data: 4") == [] and splitter.pending
    assert splitter.rest() == b"data: 4" and not splitter.pending


def test_an_event_that_never_ends_is_capped() -> None:
    splitter = SSESplitter(limit=1024 * 1024)
    piece = b"data: " + b"x" * 4090
    with pytest.raises(UpstreamError, match="passed 1048576 bytes"):
        for _ in range(1024):
            splitter.feed(piece)
    assert not splitter.pending  # nothing held after the failure


def test_a_long_event_is_searched_once() -> None:
    """16 MiB in 1 KiB pieces: a copy and rescan from the start on every piece would move 128 GiB."""
    splitter = SSESplitter(limit=32 * 1024 * 1024)
    piece = b"x" * 1024
    started = time.process_time()
    for _ in range(16 * 1024):
        assert splitter.feed(piece) == []
    assert splitter.feed(b"\n\ndata: next\n\n") == [b"x" * (16 * 1024 * 1024), b"data: next"]
    assert time.process_time() - started < 5  # linear: well under a second on one core
