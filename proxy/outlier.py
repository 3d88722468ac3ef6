"""Passive outlier detection: eject what keeps failing, for growing periods.

Keys are provider ids (fixed-URL providers) or endpoint URLs (self-hosted
endpoints). `consecutive_failures` failures in a row eject a key for
`base_ejection_time`, doubled on each new ejection up to `max_ejection_time`;
an upstream's Retry-After (on 429/503) ejects at once for at least that long.
A success resets the count. The clock is injected so tests need no sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lockgate.api.ir import OutlierDetection


@dataclass
class _State:
    consecutive: int = 0
    ejections: int = 0
    until: float = 0.0


class OutlierDetector:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._states: dict[str, _State] = {}

    def is_ejected(self, key: str) -> bool:
        state = self._states.get(key)
        return state is not None and state.until > self._clock()

    def ejected_until(self, key: str) -> float:
        state = self._states.get(key)
        return state.until if state is not None else 0.0

    def ejected_for(self, key: str) -> float:
        """Seconds left of the key's ejection (0 when it is not ejected)."""
        state = self._states.get(key)
        return max(0.0, state.until - self._clock()) if state is not None else 0.0

    def ejected(self, keys: Iterable[str]) -> frozenset[str]:
        now = self._clock()
        states = self._states
        return frozenset(k for k in keys if (s := states.get(k)) is not None and s.until > now)

    def success(self, key: str) -> None:
        state = self._states.get(key)
        if state is not None and state.until <= self._clock():
            del self._states[key]

    def failure(self, key: str, policy: OutlierDetection, retry_after: float | None = None) -> bool:
        """Count a failure; True when it ejected the key."""
        state = self._states.setdefault(key, _State())
        now = self._clock()
        state.consecutive += 1
        if retry_after is None and state.consecutive < policy.consecutive_failures:
            return False
        period = min(policy.base_ejection_time * (2 ** state.ejections), policy.max_ejection_time)
        if retry_after is not None:
            period = max(period if state.consecutive >= policy.consecutive_failures else 0.0,
                         min(retry_after, policy.max_ejection_time))
        state.ejections += 1
        state.consecutive = 0
        state.until = now + period
        return True
