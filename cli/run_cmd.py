"""`lockgate run -f PATH...`: the standalone gateway, no cluster needed.

Serves the manifests in PATH (files or folders) and reloads them on change.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lockgate.cli.serving import add_serving_arguments, configure_logging, missing_paths, serve_from, settings_from


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="serve manifests from files, with no cluster (hot reload)")
    parser.add_argument("-f", "--filename", dest="paths", action="append", required=True, metavar="PATH",
                        help="manifest file or folder (repeatable)")
    add_serving_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    missing = missing_paths(args.paths)
    if missing:
        print(f"error: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    from lockgate.cli.source_files import FileSource, default_state_dir

    state_dir = args.state_dir or str(default_state_dir())
    args.state_dir = state_dir
    return serve_from(lambda: FileSource(args.paths, state_dir), settings_from(args))
