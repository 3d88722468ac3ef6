"""The semantic cache's pure parts and its in-process index.

A question is the last user message (or the whole conversation, by policy);
its partition is everything else that shapes the answer: the operation, the
resolved model, the system prompt and the other parameters. A hit is the
nearest stored question of the same partition whose cosine similarity reaches
the policy's threshold. Vectors are kept normalised (float32), so a search is
one matrix-vector product over the partition's rows.

`SemanticIndex` holds, per Route, at most `max_entries` records, oldest
dropped first; with a shared store each replica reloads a Route's records
from it when they are older than `refresh_seconds`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from lockgate.proxy.cache.key import IGNORED_FIELDS

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]
else:
    Vector = Any  # numpy loads with the first vector: a gateway without a semantic cache never pays for it
QUESTION_FIELDS = frozenset({"messages", "prompt", "input", "instructions"})


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("text"))
    return ""


def question(op: str, body: Mapping[str, Any], mode: str) -> str:
    """What is embedded: the last user message, or the conversation (every non-system message)."""
    if op == "completions":
        prompt = body.get("prompt")
        return prompt if isinstance(prompt, str) else "\n".join(map(str, prompt or ()))
    messages = body.get("messages") if op == "chat" else body.get("input")
    if isinstance(messages, str):
        return messages
    turns = [m for m in messages or () if isinstance(m, dict) and m.get("role") not in ("system", "developer")]
    if mode == "conversation":
        return "\n".join(f"{m.get('role')}: {_text(m.get('content'))}" for m in turns)
    users = [m for m in turns if m.get("role") == "user"]
    return _text(users[-1].get("content")) if users else ""


def system_prompt(op: str, body: Mapping[str, Any]) -> str:
    if op == "responses":
        instructions = body.get("instructions")
        system = instructions if isinstance(instructions, str) else ""
        items = body.get("input") if isinstance(body.get("input"), list) else []
    else:
        system, items = "", body.get("messages") if op == "chat" else []
    parts = [_text(m.get("content")) for m in items or () if isinstance(m, dict)
             and m.get("role") in ("system", "developer")]
    return "\n".join([system, *parts]) if parts else system


def partition(op: str, model: str, body: Mapping[str, Any], mode: str) -> str:
    """Entries of one partition may answer each other: same operation, model, system prompt and parameters."""
    rest = {k: v for k, v in body.items() if k not in IGNORED_FIELDS and k not in QUESTION_FIELDS}
    data = orjson.dumps([op, model, system_prompt(op, body), rest], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()[:32]


def normalised(values: Sequence[float]) -> Vector | None:
    import numpy as np

    vector = np.asarray(values, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    if vector.ndim != 1 or not vector.size or not np.isfinite(norm) or norm == 0.0:
        return None
    return vector / norm


def encode_record(part: str, key: str, expires: float, vector: Vector) -> bytes:
    import numpy as np

    return orjson.dumps([part, key, expires]) + b"\n" + vector.astype(np.float32).tobytes()


def decode_record(record: bytes) -> tuple[str, str, float, Vector] | None:
    import numpy as np

    head, _, raw = record.partition(b"\n")
    try:
        part, key, expires = orjson.loads(head)
        vector = np.frombuffer(raw, dtype=np.float32)
    except (orjson.JSONDecodeError, ValueError, TypeError):
        return None
    return str(part), str(key), float(expires), vector


@dataclass
class _Partition:
    keys: list[str] = field(default_factory=list)
    expires: list[float] = field(default_factory=list)
    rows: list[Vector] = field(default_factory=list)
    matrix: Vector | None = None  # the rows stacked, rebuilt after a change

    def search(self, vector: Vector, now: float) -> tuple[str, float] | None:
        if not self.rows:
            return None
        import numpy as np

        if self.matrix is None:
            self.matrix = np.vstack(self.rows)
        if self.matrix.shape[1] != vector.shape[0]:
            return None  # another embedding model's vectors
        scores = self.matrix @ vector
        for index in np.argsort(-scores)[:4]:  # the best that has not expired
            if self.expires[int(index)] > now:
                return self.keys[int(index)], float(scores[int(index)])
        return None


@dataclass
class _RouteIndex:
    max_entries: int
    order: list[tuple[str, str]] = field(default_factory=list)  # (partition, key), oldest first
    partitions: dict[str, _Partition] = field(default_factory=dict)
    loaded_at: float = float("-inf")

    def add(self, part: str, key: str, expires: float, vector: Vector) -> None:
        slot = self.partitions.setdefault(part, _Partition())
        if key in slot.keys:
            at = slot.keys.index(key)
            slot.expires[at], slot.rows[at], slot.matrix = expires, vector, None
            return
        slot.keys.append(key)
        slot.expires.append(expires)
        slot.rows.append(vector)
        slot.matrix = None
        self.order.append((part, key))
        if len(self.order) > self.max_entries:
            old_part, old_key = self.order.pop(0)
            old = self.partitions[old_part]
            at = old.keys.index(old_key)
            del old.keys[at], old.expires[at], old.rows[at]
            old.matrix = None
            if not old.keys:
                del self.partitions[old_part]


class SemanticIndex:
    def __init__(self, refresh_seconds: float = 1.0) -> None:
        self.refresh_seconds = refresh_seconds
        self._routes: dict[str, _RouteIndex] = {}

    def _route(self, route: str, max_entries: int) -> _RouteIndex:
        index = self._routes.get(route)
        if index is None or index.max_entries != max_entries:
            index = self._routes[route] = _RouteIndex(max_entries)
        return index

    def stale(self, route: str, max_entries: int) -> bool:
        return time.monotonic() - self._route(route, max_entries).loaded_at >= self.refresh_seconds

    def load(self, route: str, max_entries: int, records: list[bytes]) -> None:
        """Replace a Route's records with the store's (newest first)."""
        index = _RouteIndex(max_entries, loaded_at=time.monotonic())
        for record in reversed(records):
            decoded = decode_record(record)
            if decoded is not None:
                index.add(*decoded)
        self._routes[route] = index

    def add(self, route: str, max_entries: int, part: str, key: str, expires: float, vector: Vector) -> None:
        self._route(route, max_entries).add(part, key, expires, vector)

    def search(self, route: str, max_entries: int, part: str, vector: Vector) -> tuple[str, float] | None:
        slot = self._route(route, max_entries).partitions.get(part)
        return slot.search(vector, time.time()) if slot is not None else None

    def drop(self, route: str | None, namespace: str | None) -> None:
        """Forget a Route's records, a namespace's, or (neither given) all."""
        for name in list(self._routes):
            if (route is None or name == route) and (namespace is None or name.startswith(namespace + "/")):
                del self._routes[name]

    def __len__(self) -> int:
        return sum(len(r.order) for r in self._routes.values())
