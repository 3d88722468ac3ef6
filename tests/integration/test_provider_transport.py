"""A provider's own CA bundle, client certificate and proxy, end to end: the OpenAI SDK through the gateway to
an https upstream that wants a client certificate, through a CONNECT proxy."""

from __future__ import annotations

from pathlib import Path

import openai
import orjson

from lockgate.api import ir
from lockgate.proxy.source import Snapshot
from tests.connectproxy import ConnectProxy
from tests.gatewayconfig import KEY, provider, snapshot
from tests.integration.conftest import base_url
from tests.kube.certs import client_cert, new_ca, serving_cert
from tests.tlsupstream import serve_tls, tls_server_context

COMPLETION = {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o-up",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "over mutual TLS"},
                           "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}


async def test_mutual_tls_through_the_providers_proxy(gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server_ca, client_ca = new_ca("upstream-ca"), new_ca("client-ca")
    context = tls_server_context(tmp_path, serving_cert(server_ca, "127.0.0.1"), "upstream", client_ca)
    upstream = await serve_tls("127.0.0.1", 0, context, orjson.dumps(COMPLETION))
    port = upstream.sockets[0].getsockname()[1]
    leaf = client_cert(client_ca, "lockgate")
    try:
        async with ConnectProxy() as proxy:
            p = provider("ns/internal", "openai-compatible", f"https://localhost:{port}/v1", ca_bundle="ca",
                         client_certificate="client", proxy=proxy.url)
            plain = snapshot([p])
            values = {**plain.credentials.values, "ca": server_ca.cert_pem.decode(),
                      "client": leaf.cert_pem.decode(), "client.key": leaf.key_pem.decode()}
            server = await gateway(Snapshot(plain.config, ir.Credentials(values=values)))
            client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
            for _ in range(2):
                answer = await client.chat.completions.create(model="gpt-4o",
                                                              messages=[{"role": "user", "content": "hi"}])
                assert answer.choices[0].message.content == "over mutual TLS"
            assert proxy.tunnels == [f"localhost:{port}"]  # one tunnel, one kept-alive connection
    finally:
        upstream.close()


async def test_without_the_client_certificate_the_upstream_refuses(gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server_ca, client_ca = new_ca("upstream-ca"), new_ca("client-ca")
    context = tls_server_context(tmp_path, serving_cert(server_ca, "127.0.0.1"), "upstream", client_ca)
    upstream = await serve_tls("127.0.0.1", 0, context, orjson.dumps(COMPLETION))
    port = upstream.sockets[0].getsockname()[1]
    try:
        p = provider("ns/internal", "openai-compatible", f"https://localhost:{port}/v1", ca_bundle="ca")
        plain = snapshot([p])
        values = {**plain.credentials.values, "ca": server_ca.cert_pem.decode()}
        server = await gateway(Snapshot(plain.config, ir.Credentials(values=values)))
        client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
        try:
            await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        except openai.APIStatusError as exc:
            assert exc.status_code == 502
        else:
            raise AssertionError("the upstream answered without a client certificate")
    finally:
        upstream.close()
