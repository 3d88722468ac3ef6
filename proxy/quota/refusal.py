"""A quota refusal as the client sees it: 429 (503 while a closed-mode quota store is away), with Retry-After."""

from __future__ import annotations

from lockgate.proxy.errors import ApiError
from lockgate.proxy.quota import QuotaRejected


def quota_error(rejected: QuotaRejected) -> ApiError:
    headers = {"Retry-After": str(max(1, int(rejected.retry_after + 0.999))), **rejected.headers}
    provider = rejected.code == "provider_rate_limited"
    if rejected.status == 503:  # QuotaStoreUnavailable: fail mode "closed" while Redis is away
        return ApiError(503, rejected.message, type="api_error", code=rejected.code, error_type="internal",
                        headers=headers)
    return ApiError(429, rejected.message, type="insufficient_quota" if rejected.code == "insufficient_quota"
                    else "rate_limit_error", code=rejected.code,
                    error_type="provider_rate_limited" if provider else "policy_rate_limited", headers=headers)
