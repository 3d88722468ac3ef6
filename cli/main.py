"""The `lockgate` command: one entry point, one module per subcommand.

Each subcommand module exposes `register(subparsers)`, which adds its parser
and sets `func` to a callable taking the parsed arguments and returning an
exit code. Heavy imports (kopf, aiohttp) happen inside those callables so
`lockgate render` stays fast. The modules are imported plainly: a missing one
is an error, never a subcommand silently left out.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lockgate.cli import crds_cmd, dev_cmd, operator_cmd, proxy_cmd, render_cmd, run_cmd

# Subcommand modules, in the order `lockgate --help` lists them.
SUBCOMMANDS = (render_cmd, run_cmd, proxy_cmd, operator_cmd, crds_cmd, dev_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lockgate", description="Lockgate, a Kubernetes-native AI gateway")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
