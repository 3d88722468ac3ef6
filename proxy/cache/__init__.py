"""Response caching: exact and semantic, in memory or in Redis shared by replicas.

- `key`: what a request is cached under (pure): the normalised request's hash, the scope.
- `entry`: a stored answer and how it is served again (new id and `created`, SSE replay).
- `record`: a stream's client bytes kept while they go out, stored only once it ended cleanly.
- `memory` / `redis_store`: the stores (LRU bounded by bytes; Redis with TTLs).
- `semantic`: the similarity index of embedded questions.
- `service`: the one object the pipeline's cache step talks to; `metrics`: its series.
"""

from lockgate.proxy.cache.service import CacheService, CacheSettings, Lookup, make_cache_service

__all__ = ["CacheService", "CacheSettings", "Lookup", "make_cache_service"]
