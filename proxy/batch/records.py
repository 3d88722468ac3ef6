"""The File and Batch objects as OpenAI shapes them, from what the state store keeps (pure)."""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

import orjson

# The endpoints a batch may run, and the operation each is in the pipeline.
ENDPOINTS: dict[str, str] = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "responses",
}

FINAL_STATUSES = frozenset({"failed", "completed", "expired", "cancelled"})
# Timestamps of the Batch object, each set when the batch enters its status.
STATUS_TIMES = ("in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at",
                "cancelled_at")


def new_id(prefix: str) -> str:
    """An id that sorts by creation time (milliseconds), then 16 random hex digits."""
    return f"{prefix}{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


@dataclass(frozen=True)
class FileRecord:
    id: str
    owner: str  # the ApiKey id (namespace/name) that owns it
    size: int
    created_at: int
    filename: str
    purpose: str
    expires_at: int | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> FileRecord:
        return cls(**orjson.loads(raw))

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": self.size, "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed",
                "status_details": None, "expires_at": self.expires_at}


def _int(fields: dict[str, str], name: str) -> int:
    value = fields.get(name)
    return int(value) if value else 0


def _opt_int(fields: dict[str, str], name: str) -> int | None:
    value = fields.get(name)
    return int(value) if value else None


def batch_object(fields: dict[str, str]) -> dict[str, Any]:
    """The Batch object from the fields of its Redis hash."""
    errors = orjson.loads(fields["errors"]) if fields.get("errors") else None
    input_tokens, output_tokens = _int(fields, "input_tokens"), _int(fields, "output_tokens")
    obj: dict[str, Any] = {
        "id": fields["id"],
        "object": "batch",
        "endpoint": fields["endpoint"],
        "model": fields.get("model") or None,
        "errors": {"object": "list", "data": errors} if errors else None,
        "input_file_id": fields["input_file_id"],
        "completion_window": fields["completion_window"],
        "status": fields["status"],
        "output_file_id": fields.get("output_file_id") or None,
        "error_file_id": fields.get("error_file_id") or None,
        "created_at": _int(fields, "created_at"),
        "expires_at": _opt_int(fields, "expires_at"),
        **{name: _opt_int(fields, name) for name in STATUS_TIMES},
        "request_counts": {"total": _int(fields, "total"), "completed": _int(fields, "completed"),
                           "failed": _int(fields, "failed")},
        "usage": {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": input_tokens + output_tokens},
        "metadata": orjson.loads(fields["metadata"]) if fields.get("metadata") else None,
    }
    return obj


def page(objects: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """A list in OpenAI's cursor-page shape."""
    return {"object": "list", "data": objects, "first_id": objects[0]["id"] if objects else None,
            "last_id": objects[-1]["id"] if objects else None, "has_more": has_more}
