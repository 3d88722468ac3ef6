"""Durations as users write them (`200ms`, `5s`, `1m`, `1h30m`), kept as text in
the CRD API and turned into seconds for the IR."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration string; raises ValueError with the offending text."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: use a number and a unit, like 200ms, 5s, 1m or 1h30m")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text))


def _check(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, json_schema_extra={"x-lockgate-format": "duration"}),
    AfterValidator(_check),
]
