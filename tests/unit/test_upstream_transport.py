"""NO_PROXY matching and proxy URLs: pure functions of the upstream client's transport choice."""

from __future__ import annotations

import pytest

from lockgate.proxy.upstream import InvalidRequest, UpstreamSettings
from lockgate.proxy.upstream.request import Origin
from lockgate.proxy.upstream.transport import bypasses_proxy, parse_proxy


@pytest.mark.parametrize(("host", "no_proxy", "direct"), [
    ("api.openai.com", "*", True),
    ("api.openai.com", "openai.com", True),
    ("api.openai.com", ".openai.com", True),
    ("api.openai.com", "*.openai.com", True),
    ("openai.com", ".openai.com", True),
    ("notopenai.com", "openai.com", False),
    ("api.openai.com", "localhost, example.com", False),
    ("llm.internal", "llm.internal:443", True),
    ("10.1.2.3", "10.0.0.0/8", True),
    ("10.1.2.3", "10.1.2.3", True),
    ("192.168.1.1", "10.0.0.0/8,example.com", False),
    ("::1", "[::1]:8080", True),
    ("fd00::5", "fd00::/8", True),
    ("example.com", "", False),
])
def test_no_proxy(host: str, no_proxy: str, direct: bool) -> None:
    assert bypasses_proxy(host, no_proxy) is direct


def test_proxy_urls() -> None:
    assert parse_proxy("http://proxy.internal:3128") == (Origin("http", "proxy.internal", 3128), None)
    assert parse_proxy("proxy.internal") == (Origin("http", "proxy.internal", 80), None)
    assert parse_proxy("http://u%40x:p%3Aw@proxy:8080")[1] == "Basic dUB4OnA6dw=="  # u@x:p:w
    with pytest.raises(InvalidRequest, match="HTTP CONNECT"):
        parse_proxy("https://proxy:443")


def test_proxies_from_the_environment_either_case() -> None:
    settings = UpstreamSettings.from_environment({"https_proxy": "http://a:1", "HTTP_PROXY": "http://b:2",
                                                  "NO_PROXY": "internal"})
    assert (settings.https_proxy, settings.http_proxy, settings.no_proxy) == ("http://a:1", "http://b:2", "internal")
    assert UpstreamSettings.from_environment({}).https_proxy is None
