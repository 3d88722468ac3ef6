"""Building a large configuration without the cyclic garbage collector in the way.

A configuration of 10,000 keys is a million small objects, none of them in a
reference cycle. While they are being built, Python's cyclic collector runs
again and again (it counts allocations) and walks everything alive each time
it reaches the oldest generation: most of a load's time, and a pause for
every thread, the event loop's included. `collector_paused()` switches the
collector off for the build; `freeze=True` then moves what exists to the
permanent generation (`gc.freeze()`), so the collections that follow do not
walk the new configuration either. Objects outside cycles are still freed
the moment their last reference goes; only cyclic garbage among frozen
objects would stay: configuration objects form no cycles, and what else is
frozen with them is what happened to be alive at that instant (a reload's
worth of uncollected request garbage at most, not a growing share).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_paused = 0  # builds under way (threads may overlap)
_was_enabled = False


@contextmanager
def collector_paused(freeze: bool = False) -> Iterator[None]:
    global _paused, _was_enabled
    with _lock:
        if _paused == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _lock:
            _paused -= 1
            if freeze:
                gc.freeze()
            if _paused == 0 and _was_enabled:
                gc.enable()
