"""The upstream client's settings: a branch of the proxy's settings tree, fixed at start-up.

Every cap holds against an upstream that sends without end: response heads,
whole (non-stream) bodies, single stream events and error bodies nobody
reads; connections are bounded per origin and in age. Proxies come from
the environment once, at start-up (`from_environment`), never per request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    max_header_bytes: int = 64 * 1024  # a response head's header names and values, all together
    max_header_count: int = 256  # header lines in one response head (trailers count too)
    max_body_bytes: int = 128 * MiB  # a whole (non-stream) body; streams are flow-controlled instead
    drop_body_bytes: int = 64 * 1024  # an unread body (429, 5xx) up to this size is read to keep the connection
    max_connections_per_origin: int = 1024  # requests beyond it wait for a connection of that origin
    max_connection_age: float = 600.0  # seconds: an older connection is not reused (rebalances behind DNS)
    keepalive: float = 60.0  # seconds an idle connection is reused (less when the upstream says so)
    sweep_interval: float = 5.0  # seconds between sweeps that close expired idle connections and forget origins
    happy_eyeballs_delay: float = 0.25  # seconds before the next address of a host is tried in parallel
    http_proxy: str | None = None  # HTTP CONNECT proxy for http upstreams
    https_proxy: str | None = None  # HTTP CONNECT proxy for https upstreams
    no_proxy: str | None = None  # comma-separated hosts and domains reached directly ("*": all)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> UpstreamSettings:
        """Defaults, with HTTP_PROXY, HTTPS_PROXY and NO_PROXY (either case) from the environment."""
        env = os.environ if environ is None else environ

        def read(name: str) -> str | None:
            return env.get(name.lower()) or env.get(name.upper()) or None

        return cls(http_proxy=read("http_proxy"), https_proxy=read("https_proxy"), no_proxy=read("no_proxy"))
