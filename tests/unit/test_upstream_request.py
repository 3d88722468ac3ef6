"""The pure parts of an upstream request: URL splitting, the head's bytes, header validation."""

from __future__ import annotations

import pytest

from lockgate.proxy.upstream import InvalidRequest
from lockgate.proxy.upstream.request import Origin, request_head, split_url


def test_split_url_keeps_path_and_query_and_names_the_origin() -> None:
    target = split_url("http://127.0.0.1:8000/v1/chat/completions")
    assert target.origin == Origin("http", "127.0.0.1", 8000)
    assert target.key == "http://127.0.0.1:8000"
    assert target.head == (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
                           b"Accept-Encoding: identity\r\n")
    azure = split_url("https://Example.OpenAI.Azure.com/openai/deployments/gpt-4o/chat/completions"
                      "?api-version=2024-10-21")
    assert azure.origin == Origin("https", "example.openai.azure.com", 443) and azure.origin.tls
    assert azure.head.startswith(b"POST /openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21 "
                                 b"HTTP/1.1\r\nHost: example.openai.azure.com\r\n")


def test_split_url_default_ports_ipv6_and_escapes() -> None:
    assert split_url("http://upstream/v1").origin.port == 80
    assert split_url("https://upstream:443/v1").head.startswith(b"POST /v1 HTTP/1.1\r\nHost: upstream\r\n")
    v6 = split_url("http://[::1]:9000/x")
    assert v6.origin == Origin("http", "::1", 9000) and str(v6.origin) == "[::1]:9000"
    assert b"Host: [::1]:9000\r\n" in v6.head
    assert split_url("http://h/deployments/my model/x%2Fy").head.startswith(
        b"POST /deployments/my%20model/x%2Fy HTTP/1.1\r\n")
    assert split_url("http://h").head.startswith(b"POST / HTTP/1.1\r\n")


def test_split_url_caches_by_string() -> None:
    assert split_url("http://cache.test/v1/a") is split_url("http://cache.test/v1/a")


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://h/x", "scheme"),
    ("http:///x", "no host"),
    ("http://h:99999/x", "not valid"),
    ("https://user:s3cret@h/x", "credentials"),
])
def test_split_url_refuses_what_cannot_be_sent(url: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as caught:
        split_url(url)
    assert "s3cret" not in str(caught.value)
    assert isinstance(caught.value, ConnectionError)


def test_request_head_is_one_block_with_length_and_headers() -> None:
    target = split_url("http://127.0.0.1:8000/v1/chat/completions")
    head = request_head(target, {"Content-Type": "application/json", "Authorization": "Bearer k"}, 42)
    assert head == (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nAccept-Encoding: identity\r\n"
                    b"Content-Length: 42\r\nContent-Type: application/json\r\nAuthorization: Bearer k\r\n\r\n")
    assert request_head(target, {}, 0).endswith(b"identity\r\nContent-Length: 0\r\n\r\n")


@pytest.mark.parametrize("bad", ["sk-secret\n", "sk-\rsecret", "sk-secret\0", "sk\r\nX-Injected: 1"])
def test_request_head_refuses_cr_lf_nul_in_a_value_without_echoing_it(bad: str) -> None:
    target = split_url("http://127.0.0.1:8000/v1/x")
    with pytest.raises(InvalidRequest) as caught:
        request_head(target, {"Content-Type": "application/json", "Authorization": f"Bearer {bad}"}, 1)
    assert "'Authorization'" in str(caught.value)
    assert "secret" not in str(caught.value) and "sk" not in str(caught.value)


def test_request_head_refuses_cr_lf_nul_in_a_name() -> None:
    target = split_url("http://127.0.0.1:8000/v1/x")
    for name in ("X-A\r\nX-B", "X-A\n", "X\0"):
        with pytest.raises(InvalidRequest, match="header name"):
            request_head(target, {name: "v"}, 0)
