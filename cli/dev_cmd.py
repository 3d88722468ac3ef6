"""`lockgate dev`: development aids.

- `lockgate dev upstream`: a fake OpenAI-compatible upstream (echoes prompts).
- `lockgate dev run-quickstart`: that upstream and the gateway on
  examples/quickstart/, in one process (what `make run` starts).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from lockgate.cli.serving import add_serving_arguments, configure_logging, missing_paths, run_loop, settings_from

log = logging.getLogger("lockgate.dev")
QUICKSTART = Path("examples/quickstart")
QUICKSTART_UPSTREAM_PORT = 8181  # the port the quickstart's ModelProvider names


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("dev", help="development aids: a fake upstream, the quickstart")
    commands = parser.add_subparsers(dest="dev_command", required=True, metavar="DEV_COMMAND")

    upstream = commands.add_parser("upstream", help="a fake OpenAI-compatible upstream that echoes (development aid)")
    upstream.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    upstream.add_argument("--port", type=int, default=QUICKSTART_UPSTREAM_PORT, help=f"default {QUICKSTART_UPSTREAM_PORT}")
    upstream.add_argument("--log-level", default="INFO")
    upstream.set_defaults(func=run_upstream)

    quickstart = commands.add_parser("run-quickstart", help="the fake upstream and the gateway on examples/quickstart/")
    quickstart.add_argument("-f", "--filename", dest="paths", action="append", default=None, metavar="PATH",
                            help=f"manifests (default {QUICKSTART}/)")
    quickstart.add_argument("--upstream-port", type=int, default=QUICKSTART_UPSTREAM_PORT,
                            help=f"the fake upstream's port (default {QUICKSTART_UPSTREAM_PORT}, the port the quickstart's provider calls)")
    add_serving_arguments(quickstart)
    quickstart.set_defaults(func=run_quickstart)


def run_upstream(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    return run_loop(_serve_upstream(args.host, args.port))


async def _serve_upstream(host: str, port: int) -> None:
    from lockgate.proxy.dev_upstream import start

    runner = await start(host, port)
    log.warning("development upstream (echoes prompts, not a model) on http://%s:%d/v1", host, port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def run_quickstart(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    if args.upstream_port != QUICKSTART_UPSTREAM_PORT and args.paths is None:
        log.warning("the quickstart provider calls port %d; --upstream-port %d leaves it unanswered",
                    QUICKSTART_UPSTREAM_PORT, args.upstream_port)
    args.paths = args.paths or [str(QUICKSTART)]
    missing = missing_paths(args.paths)
    if missing:
        print(f"error: no such file or folder: {', '.join(missing)} (run from the repository root)", file=sys.stderr)
        return 2
    return run_loop(_quickstart(args))


async def _quickstart(args: argparse.Namespace) -> None:
    from lockgate.proxy.dev_upstream import start
    from lockgate.proxy.server import serve
    from lockgate.cli.source_files import FileSource, default_state_dir

    runner = await start(args.host, args.upstream_port)
    log.warning("development upstream (echoes prompts, not a model) on http://%s:%d/v1", args.host, args.upstream_port)
    log.info("gateway on http://%s:%d (admin %d); try: curl -H 'Authorization: Bearer lg-quickstart-demo-key' "
             "http://%s:%d/v1/models", args.host, args.port, args.admin_port, args.host, args.port)
    state_dir = args.state_dir or str(default_state_dir())
    args.state_dir = state_dir
    try:
        await serve(FileSource(args.paths, state_dir), settings_from(args))
    finally:
        await runner.cleanup()
