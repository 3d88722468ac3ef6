"""A TLS Redis (rediss://) whose certificate a private CA signs, as a managed Redis often is:
the proxy trusts it with the CA file the chart mounts from a Secret (--quota-store-ca), and
refuses it without."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lockgate.api.ir import ConsumerKey, RateLimits
from lockgate.proxy.quota import AdmitRequest, QuotaStoreUnavailable, make_quota_service
from tests.integration.quota.redis_server import RedisServer
from tests.kube.certs import new_ca, serving_cert
from tests.loopback import free_port

pytestmark = pytest.mark.redis

KEY = ConsumerKey(id="ns/team", consumer="team", hashes=(), limits=RateLimits(rpm=2))


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """redis-server answering TLS only; its port and the CA file that signs its certificate."""
    ca = new_ca("redis-test-ca")
    leaf = serving_cert(ca, "127.0.0.1")  # valid for 127.0.0.1
    files = {"ca.crt": ca.cert_pem, "tls.crt": leaf.cert_pem, "tls.key": leaf.key_pem}
    for name, body in files.items():
        (tmp_path / name).write_bytes(body)
    server = RedisServer()
    tls_port = free_port()
    server.extra = ["--tls-port", str(tls_port), "--tls-cert-file", str(tmp_path / "tls.crt"),
                    "--tls-key-file", str(tmp_path / "tls.key"), "--tls-ca-cert-file", str(tmp_path / "ca.crt"),
                    "--tls-auth-clients", "no"]
    server.start()  # answers PING on its plain port too; clients below use TLS
    try:
        yield tls_port, tmp_path / "ca.crt"
    finally:
        server.kill()


async def test_a_tls_redis_is_trusted_through_the_ca_file_and_refused_without(tls_redis: tuple[int, Path]) -> None:
    port, ca_file = tls_redis
    url = f"rediss://127.0.0.1:{port}/0?socket_timeout=2&socket_connect_timeout=2"
    trusted = make_quota_service(url, "closed", 1, ca_file=str(ca_file))
    untrusted = make_quota_service(url, "closed", 1)
    try:
        for _ in range(2):
            reservation = await trusted.admit(AdmitRequest(KEY, "m", "ns/p", RateLimits(), 10))
            await trusted.settle(reservation, 10)
        usage = await trusted.usage([KEY])
        assert usage["ns/team"]["requests"] == 2  # counted in the TLS Redis
        with pytest.raises(QuotaStoreUnavailable):  # fail-closed: the certificate is not trusted
            await untrusted.admit(AdmitRequest(KEY, "m", "ns/p", RateLimits(), 10))
    finally:
        await trusted.close()
        await untrusted.close()
