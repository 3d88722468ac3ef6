"""Stable hashes of IR content: equal content hashes equally, whatever the order it was built in."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson
from pydantic import BaseModel


def canonical_json(value: Any) -> str:
    """Stable JSON (sorted keys, no spaces) so equal content hashes equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def part_hash(part: BaseModel) -> str:
    """SHA-256 of one part's stable JSON (sorted keys, no spaces)."""
    body = part.model_dump(mode="json")
    try:
        text = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer past 64 bits
        text = canonical_json(body).encode()
    return hashlib.sha256(text).hexdigest()


def hash_key(key: str) -> str:
    """The SHA-256 hex digest a consumer key is known by."""
    return hashlib.sha256(key.encode()).hexdigest()
