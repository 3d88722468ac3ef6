from tests.integration.quota.conftest import proxies, redis_server

__all__ = ["proxies", "redis_server"]
