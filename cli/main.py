"""The `lockgate` command: one entry point, one module per subcommand.

Each subcommand module exposes `register(subparsers)`, which adds its parser
and sets `func` to a callable taking the parsed arguments and returning an
exit code. Heavy imports (kopf, aiohttp) happen inside those callables so
`lockgate render` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Subcommand modules, in the order `lockgate --help` lists them.
SUBCOMMANDS: tuple[str, ...] = (
    "lockgate.cli.render_cmd",
    "lockgate.cli.run_cmd",
    "lockgate.cli.proxy_cmd",
    "lockgate.cli.operator_cmd",
    "lockgate.cli.crds_cmd",
    "lockgate.cli.dev_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lockgate", description="Lockgate, a Kubernetes-native AI gateway")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # subcommand not built yet
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
