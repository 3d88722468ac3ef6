"""`lockgate operator`: the Kopf operator that turns Lockgate objects into
gateway configuration."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the operator's modules load the Kubernetes client (aiohttp): only when it runs
    from lockgate.operator.settings import OperatorSettings


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "operator", help="run the operator (Kopf) against the current Kubernetes cluster")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--namespace", "-n", action="append", default=[], metavar="NS",
                       help="namespace to watch (repeatable)")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    p.add_argument("--publish-namespace", metavar="NS",
                   help="namespace of the published ConfigMap/Secret and the proxy Service "
                        "(default: the NS of --config-map NS/NAME, else $POD_NAMESPACE, else the first --namespace, else default)")
    p.add_argument("--config-map", default="lockgate-config", metavar="[NS/]NAME",
                   help="the published ConfigMap, split into NAME-1..N when large (default lockgate-config)")
    p.add_argument("--credentials-secret", default="lockgate-credentials", metavar="NAME",
                   help="the published credentials Secret, in the publish namespace (default lockgate-credentials)")
    p.add_argument("--proxy-service", metavar="[NS/]NAME",
                   help="Service in front of the proxies; its ready endpoints are asked what they loaded (Programmed)")
    p.add_argument("--proxy-admin-port", type=int, default=9090,
                   help="admin port of the proxies when their EndpointSlices name no 'admin' port (default 9090)")
    p.add_argument("--usage-interval", type=float, default=10.0, metavar="SECONDS",
                   help="how often ApiKey usage is mirrored from the proxies into status (default 10)")
    p.add_argument("--liveness", metavar="URL", help="liveness endpoint, e.g. http://0.0.0.0:8081/healthz")
    p.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus metrics at /metrics, e.g. 0.0.0.0:8082")
    p.add_argument("--peering", metavar="NAME", help="Kopf peering object: one active operator among replicas")
    p.add_argument("--priority", type=int, default=None,
                   help="peering priority; the highest live replica is active (default: random, so replicas differ)")
    p.add_argument("--peering-lifetime", type=int, default=60, metavar="SECONDS",
                   help="how long a silent peer is still taken as alive (failover time; default 60)")
    p.add_argument("--standalone", action="store_true", help="no peering at all")
    p.add_argument("--no-cluster-scan", action="store_true",
                   help="do not list or watch namespaces and CRDs cluster-wide (Kopf's restricted mode, for "
                        "RBAC without cluster-scope reads): the CRDs must exist when the operator starts")
    p.add_argument("--generate-secret", action="append", default=[], metavar="NAME/KEY",
                   help="a Secret in the publish namespace that the operator creates with a random value under "
                        "KEY when absent, and never changes (repeatable; the chart's MCP session key and "
                        "Redis password)")
    p.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    p.add_argument("--verbose", "-v", action="store_true")
    p.set_defaults(func=run)


def settings_from(args: argparse.Namespace) -> OperatorSettings:
    from lockgate.operator.generated_secrets import GeneratedSecret
    from lockgate.operator.settings import OperatorSettings

    ns, _, config_map = args.config_map.rpartition("/")
    # Kopf pauses every replica when two share a priority: pick distinct ones.
    priority = args.priority if args.priority is not None else secrets.randbelow(10_000) + 1
    identity = f"{os.environ.get('POD_ID') or socket.gethostname()}-{secrets.token_hex(4)}"
    publish = args.publish_namespace or ns or os.environ.get("POD_NAMESPACE") or \
        (args.namespace[0] if args.namespace else "default")
    return OperatorSettings(
        namespaces=tuple(args.namespace), all_namespaces=args.all_namespaces or not args.namespace,
        publish_namespace=publish, config_map=config_map, credentials_secret=args.credentials_secret,
        proxy_service=args.proxy_service, proxy_admin_port=args.proxy_admin_port,
        peering=None if args.standalone else args.peering, priority=priority, identity=identity,
        peering_lifetime=args.peering_lifetime, usage_interval=args.usage_interval, metrics_address=args.metrics,
        generated_secrets=tuple(GeneratedSecret.parse(s) for s in args.generate_secret),
    )


def run(args: argparse.Namespace) -> int:
    import kopf

    from lockgate.operator.handlers import OperatorContext, build_registry

    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig  # Kopf's own login reads it too
    settings = settings_from(args)
    kopf.configure(verbose=args.verbose, log_prefix=True)
    logging.getLogger("lockgate").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if not args.verbose:  # one line per watch event otherwise
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    memo = OperatorContext(settings=settings, kubeconfig=args.kubeconfig)
    kopf_settings = kopf.OperatorSettings()
    kopf_settings.scanning.disabled = args.no_cluster_scan  # else Kopf retries each 403 for a minute first
    asyncio.run(kopf.operator(
        registry=build_registry(), memo=memo, settings=kopf_settings, clusterwide=settings.all_namespaces,
        namespaces=settings.namespaces, liveness_endpoint=args.liveness,
        peering_name=settings.peering, standalone=True if args.standalone or not settings.peering else None,
        priority=settings.priority,
        identity=settings.identity,  # type: ignore[arg-type]  # Kopf's Identity: a NewType of str it does not export
    ))
    return 0
