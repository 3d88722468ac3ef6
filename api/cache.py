"""Response caching policy: on a Route (what its hosts cache) and on an ApiKey (an override)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from lockgate.api.duration import Duration
from lockgate.api.meta import ApiModel

CacheMode = Literal["exact", "semantic"]
CacheScope = Literal["namespace", "consumer"]
CacheEndpoint = Literal["chat", "completions", "embeddings", "responses"]
SemanticInput = Literal["lastUserMessage", "conversation"]

ALL_ENDPOINTS: tuple[CacheEndpoint, ...] = ("chat", "completions", "embeddings", "responses")


class SemanticCache(ApiModel):
    """How similar questions are found: an embedding model served by a ModelProvider of this namespace."""

    embedding_model: str = Field(min_length=1, description="A model of kind embedding this namespace may use.")
    threshold: float = Field(default=0.95, ge=0.0, le=1.0,
                             description="Least cosine similarity of a stored question to answer from it.")
    input: SemanticInput = Field(default="lastUserMessage",
                                 description="What is embedded: lastUserMessage or the whole conversation.")
    max_entries: int = Field(default=10000, ge=1, le=1_000_000,
                             description="Entries the similarity index keeps per Route (oldest dropped first).")


class RouteCache(ApiModel):
    """Answers kept and served again for identical (exact) or similar (semantic) requests."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "self.mode != 'semantic' || has(self.semantic)",
         "message": "cache mode semantic needs cache.semantic.embeddingModel"}]})

    mode: CacheMode = Field(default="exact", description="exact or semantic.")
    ttl: Duration = Field(default="5m", description="How long an answer is served from the cache.")
    max_entry_bytes: int = Field(default=1_048_576, ge=1, le=64 * 1_048_576,
                                 description="Answers larger than this are not stored.")
    endpoints: list[CacheEndpoint] = Field(default_factory=lambda: list(ALL_ENDPOINTS),
                                           json_schema_extra={"default": list(ALL_ENDPOINTS)},
                                           description="Which APIs are cached: chat, completions, embeddings, responses.")
    cache_sampled: bool = Field(default=False,
                                description="Also cache requests with a temperature above 0 (off: they bypass).")
    scope: CacheScope = Field(default="namespace",
                              description="namespace: the namespace's consumers share answers; consumer: each its own.")
    hits_spend_tokens: bool = Field(default=False,
                                    description="A hit counts its original tokens against the key's token limits"
                                                " (off: it counts as a request only).")
    semantic: SemanticCache | None = Field(default=None, description="The similarity search (mode semantic).")

    @model_validator(mode="after")
    def _check(self) -> RouteCache:
        if self.mode == "semantic" and self.semantic is None:
            raise ValueError("cache mode semantic needs cache.semantic.embeddingModel")
        return self


class KeyCache(ApiModel):
    """A key's own cache behaviour over its Routes' policy."""

    enabled: bool = Field(default=True, description="false: this key's requests bypass the cache.")
    scope: CacheScope | None = Field(default=None, description="Overrides the Route's scope for this key.")
