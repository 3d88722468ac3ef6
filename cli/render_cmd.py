"""`lockgate render`: manifests in, the ConfigMap(s) and credentials Secret the
operator would publish out. Per-object problems go to stderr; meant for the CI
of users' GitOps repositories (`--strict`)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import yaml

from lockgate.api.configmap import encode
from lockgate.common.gc_pause import collector_paused
from lockgate.cli.manifests import ManifestError, SafeDumper, load_manifests
from lockgate.operator.translate import Translation, translate


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("render", help="translate manifests and print the config the operator would publish")
    parser.add_argument("-f", "--filename", dest="paths", action="append", required=True, metavar="PATH",
                        help="manifest file or folder (repeatable)")
    parser.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml", help="default yaml")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any object is not accepted or has a reference it may not use")
    parser.add_argument("--namespace", default="lockgate-system", help="namespace of the published objects")
    parser.add_argument("--config-map", default="lockgate-config", help="name of the published ConfigMap (default lockgate-config)")
    parser.add_argument("--credentials-secret", default="lockgate-credentials",
                        help="name of the published credentials Secret (default lockgate-credentials)")
    parser.add_argument("--include-secret-values", action="store_true",
                        help="print the credentials Secret's values; by default they are emptied, so CI logs "
                             "never hold a credential")
    parser.set_defaults(func=run)


def report(translation: Translation, stream: TextIO) -> int:
    """Writes one line per problem; returns how many objects were rejected or
    accepted with references left out (not granted)."""
    rejected = 0
    for ref, status in sorted(translation.statuses.items()):
        for cond in status.conditions:
            if cond.type == "Accepted" and cond.status != "True":
                rejected += 1
                print(f"error: {ref}: not accepted ({cond.reason}): {cond.message}", file=stream)
            elif cond.type == "ResolvedRefs" and cond.status == "False" and status.accepted:
                rejected += 1
                print(f"error: {ref}: references left out ({cond.reason}): {cond.message}", file=stream)
            elif cond.type == "Ready" and cond.status != "True" and status.accepted:
                print(f"warning: {ref}: not ready ({cond.reason}): {cond.message}", file=stream)
    return rejected


def run(args: argparse.Namespace) -> int:
    with collector_paused():  # one pass over a large, acyclic structure: nothing for the collector to find
        return _render(args)


def _render(args: argparse.Namespace) -> int:
    try:
        objects = load_manifests(args.paths)
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    translation = translate(objects, datetime.now(UTC))
    rejected = report(translation, sys.stderr)
    published = encode(
        translation.config, translation.credentials, args.namespace, args.config_map, args.credentials_secret
    )
    if not args.include_secret_values:
        published = [redact(o) for o in published]
    sys.stdout.write(dump(published, args.output))
    return 1 if args.strict and rejected else 0


REDACTED_ANNOTATION = "lockgate.io/redacted"


def redact(obj: dict[str, Any]) -> dict[str, Any]:
    """A Secret with every value emptied (keys kept, so the shape still shows)."""
    if obj.get("kind") != "Secret":
        return obj
    meta = dict(obj.get("metadata", {}))
    meta["annotations"] = {**meta.get("annotations", {}), REDACTED_ANNOTATION: "true"}
    data = {k: "" for k in {**obj.get("data", {}), **obj.get("stringData", {})}}
    rest = {k: v for k, v in obj.items() if k not in ("data", "stringData", "metadata")}
    return {**rest, "metadata": meta, "data": data}


def dump(objects: list[dict[str, Any]], output: str) -> str:
    if output == "json":
        return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2, ensure_ascii=False) + "\n"
    return yaml.dump_all(objects, Dumper=SafeDumper, sort_keys=False, allow_unicode=True, width=1 << 16)
