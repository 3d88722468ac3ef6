"""`lockgate crds -o DIR`: write the CRD YAML generated from lockgate.api."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("crds", help="write the CustomResourceDefinitions generated from the API models")
    parser.add_argument("-o", "--output", default="crds", help="folder to write into (default crds/)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lockgate.api.crdgen import render_all

    folder = Path(args.output)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        path = folder / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path}")
    return 0
