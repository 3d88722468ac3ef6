"""Flags and start-up shared by the commands that serve traffic (`run`,
`proxy`, `dev run-quickstart`): one place that turns flags into ProxySettings
and runs the event loop (uvloop when available)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lockgate.proxy.settings import ProxySettings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_serving_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address of both ports (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="OpenAI API and MCP port (default 8080)")
    parser.add_argument("--admin-port", type=int, default=9090, help="/healthz, /readyz, /metrics, /config (default 9090)")
    parser.add_argument("--state-dir", default=None, help="where generated keys and local state live (default ./.state or $LOCKGATE_STATE_DIR)")
    parser.add_argument("--quota-store", default=os.environ.get("LOCKGATE_QUOTA_STORE_URL", "memory"),
                        help="memory, or redis://host:port/db (default: $LOCKGATE_QUOTA_STORE_URL, else memory; "
                             "prefer the variable for a URL with a password, so it stays out of the process list)")
    parser.add_argument("--quota-store-ca", default=os.environ.get("LOCKGATE_QUOTA_STORE_CA") or None, metavar="PATH",
                        help="CA bundle that signs the certificate of a TLS Redis (rediss://; default "
                             "$LOCKGATE_QUOTA_STORE_CA, else the system's)")
    parser.add_argument("--quota-fail-mode", choices=("open", "closed"), default="open",
                        help="when the quota store is unreachable: let requests through (open) or refuse them (closed)")
    parser.add_argument("--replicas-hint", type=int, default=1,
                        help="proxy replicas (default 1): with the memory store, or with Redis away and fail-open, "
                             "each replica enforces limit / replicas, rounded down")
    parser.add_argument("--slot-lease", type=float, default=10.0, metavar="SECONDS",
                        help="with a Redis quota store, endpoints' maxConcurrency holds across replicas through "
                             "leases renewed every third of this; a replica that dies frees its slots within it "
                             "(default 10)")
    parser.add_argument("--default-output-reservation", type=int, default=4096, metavar="TOKENS",
                        help="output tokens reserved against tpm and the monthly budget when a request sets no "
                             "max_tokens, lowered to what the tightest tpm leaves (default 4096)")
    parser.add_argument("--drain-seconds", type=float, default=10.0, metavar="SECONDS",
                        help="on SIGTERM: readiness off, then up to this long for requests in flight to finish; "
                             "a stream still running then ends with an error event (default 10; in Kubernetes, "
                             "terminationGracePeriodSeconds less the preStop delay, and a little margin)")
    parser.add_argument("--gateway-name", default="lockgate", help="the gateway label in metrics")
    parser.add_argument("--log-level", default=os.environ.get("LOCKGATE_LOG_LEVEL", "INFO"))


def settings_from(args: argparse.Namespace) -> ProxySettings:
    """ProxySettings from the flags (imported late: the proxy is heavy)."""
    from lockgate.proxy.settings import ProxySettings, mcp_from_environment
    from lockgate.proxy.upstream import UpstreamSettings

    return ProxySettings(
        mcp=mcp_from_environment(os.environ), host=args.host, port=args.port, admin_port=args.admin_port, gateway_name=args.gateway_name,
        quota_store=args.quota_store, quota_fail_mode=args.quota_fail_mode, replicas_hint=args.replicas_hint,
        quota_store_ca=args.quota_store_ca, slot_lease=args.slot_lease,
        state_dir=args.state_dir, default_output_reservation=args.default_output_reservation,
        drain_seconds=args.drain_seconds,
        upstream=UpstreamSettings.from_environment(),
    )


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)


def run_loop(main: Coroutine[Any, Any, None]) -> int:
    """Runs until the server stops; Ctrl-C ends it without a traceback."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every platform we serve from
        runner: Any = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(main)
    except KeyboardInterrupt:
        return 130
    return 0


def missing_paths(paths: list[str]) -> list[str]:
    return [p for p in paths if not os.path.exists(p)]
