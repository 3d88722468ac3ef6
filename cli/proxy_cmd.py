"""`lockgate proxy --config-map NS/NAME --credentials-secret NS/NAME`: a proxy
replica fed by the operator's ConfigMap(s) and Secret, watched through the
Kubernetes API and hot-swapped on change."""

from __future__ import annotations

import argparse
import os
from typing import Any

from lockgate.cli.serving import add_serving_arguments, configure_logging, serve_from, settings_from


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("proxy", help="serve the configuration the operator publishes (Kubernetes)")
    parser.add_argument("--config-map", required=True, metavar="[NS/]NAME",
                        help="the published ConfigMap (its numbered parts are followed too)")
    parser.add_argument("--credentials-secret", default=None, metavar="[NS/]NAME",
                        help="the published credentials Secret (default: lockgate-credentials in the ConfigMap's namespace)")
    parser.add_argument("--kubeconfig", default=None, metavar="PATH",
                        help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, else the in-cluster service account)")
    add_serving_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    from lockgate.common.kube_client import KubeApi
    from lockgate.proxy.source_kube import KubeSource, parse_ref

    default_ns = os.environ.get("POD_NAMESPACE")
    config_map = parse_ref(args.config_map, default_ns)
    secret = parse_ref(args.credentials_secret or "lockgate-credentials", config_map[0])
    # Made where it runs: in the serving process, or in the supervisor of several workers.
    return serve_from(lambda: KubeSource(KubeApi.from_kubeconfig(args.kubeconfig), config_map, secret),
                      settings_from(args))
