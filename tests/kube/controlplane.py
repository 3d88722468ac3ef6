"""A real Kubernetes control plane on loopback: etcd + kube-apiserver, no Docker.

Used by the e2e session fixture and by `make dev-cluster`:

    with ControlPlane(locate_binaries()) as cp:
        cp.kubectl("create", "namespace", "demo")
        sa_config = cp.service_account_kubeconfig("demo", "proxy")

No controllers run (no kube-controller-manager, no kubelet): objects are stored
and served, RBAC and admission apply, but nothing garbage-collects, no default
ServiceAccount appears and namespaces stay Terminating when deleted.

The single-node cluster of the node tests (tests/kube/node.py) starts it with
`in_cluster=True` on an address its pods can route to: then the ServiceAccount
admission plugin mounts tokens into pods and the `kubernetes` Service has that
address as its endpoint.

`python -m tests.kube.controlplane` runs one in the foreground until Ctrl-C.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from tests.kube import certs
from tests.kube.binaries import Binaries, ControlPlaneError, GoMissing, locate_binaries
from tests.kube.processes import LoggedProcess, free_port, serve_until_stopped, wait_until

__all__ = ["Binaries", "ControlPlane", "ControlPlaneError", "GoMissing", "free_port",
           "locate_binaries", "wait_until"]

SERVICE_CIDR = "10.0.0.0/24"
_ETCD_PREFIX = "lockgate-etcd-"



class ControlPlane:
    """etcd + kube-apiserver on 127.0.0.1 with fresh certificates.

    Attributes once started: `server` (https URL), `kubeconfig` (admin, in
    system:masters), `workdir` (certs, logs, kubeconfigs).
    """

    def __init__(
        self,
        binaries: Binaries,
        workdir: Path | None = None,
        *,
        address: str = "127.0.0.1",
        service_cidr: str = SERVICE_CIDR,
        in_cluster: bool = False,
    ) -> None:
        self.binaries = binaries
        self.address = address
        self.service_cidr = service_cidr
        # The `kubernetes` Service: the first address of the Service range.
        self.service_ip = str(next(ipaddress.ip_network(service_cidr).hosts()))
        self.in_cluster = in_cluster
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="lockgate-kube-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.server = ""
        self._etcd: LoggedProcess | None = None
        self._apiserver: LoggedProcess | None = None
        self._etcd_data: Path | None = None
        self._ssl: ssl.SSLContext | None = None
        self._pki = self.workdir / "pki"
        self._etcd_url = ""

    # -- lifecycle -----------------------------------------------------------

    def start(self, timeout: float = 90) -> None:
        try:
            self._write_pki()
            self._start_etcd(timeout)
            self._start_apiserver(timeout)
        except BaseException:
            self.stop()
            raise

    def processes(self) -> list[LoggedProcess]:
        return [p for p in (self._etcd, self._apiserver) if p is not None]

    def stop(self) -> None:
        # The apiserver first: it would log etcd errors while shutting down.
        for proc in (self._apiserver, self._etcd):
            if proc is not None:
                proc.stop()
        if self._etcd_data is not None:
            shutil.rmtree(self._etcd_data, ignore_errors=True)
            self._etcd_data = None
        if self._own_workdir and not os.environ.get("LOCKGATE_KEEP_KUBE_WORKDIR"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- what tests use ------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """os.environ with KUBECONFIG pointing at the admin: for kubectl, helm, kopf."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as admin (or with another kubeconfig); output is text."""
        argv = [str(self.binaries.kubectl), "--kubeconfig", str(kubeconfig or self.kubeconfig), *args]
        res = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and res.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} failed ({res.returncode}): {res.stderr.strip()}"
            )
        return res

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        """One raw API call as admin (or as `token`): (status, decoded JSON body)."""
        assert self._ssl is not None, "control plane not started"
        ctx = self._ssl if token is None else self._ca_only_ssl()
        port = int(self.server.rsplit(":", 1)[1])
        conn = http.client.HTTPSConnection(self.address, port, context=ctx, timeout=10)
        try:
            headers = {"Accept": "application/json", "Content-Type": "application/json"}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            conn.request(method, path, json.dumps(body) if body is not None else None, headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw.decode(errors="replace")

    def service_account_token(
        self, namespace: str, name: str, expiration_seconds: int = 3600
    ) -> str:
        """A bound token for an existing ServiceAccount, via TokenRequest."""
        status, body = self.api(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"expirationSeconds": expiration_seconds}},
        )
        if status != 201:
            raise ControlPlaneError(f"TokenRequest for {namespace}/{name}: {status} {body}")
        return str(body["status"]["token"])

    def service_account_kubeconfig(
        self, namespace: str, name: str, *, create: bool = False, expiration_seconds: int = 3600
    ) -> Path:
        """A kubeconfig that acts as system:serviceaccount:<namespace>:<name>.

        With create=True the namespace and ServiceAccount are created if missing.
        """
        if create:
            for url, obj in (
                ("/api/v1/namespaces", {"metadata": {"name": namespace}}),
                (f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": name}}),
            ):
                status, body = self.api("POST", url, obj)
                if status not in (201, 409):  # 409: already there
                    raise ControlPlaneError(f"POST {url}: {status} {body}")
        token = self.service_account_token(namespace, name, expiration_seconds)
        path = self.workdir / f"sa-{namespace}-{name}.kubeconfig"
        self._write_kubeconfig(path, f"{namespace}-{name}", {"token": token})
        return path

    def install_crds(self, paths: Sequence[Path], timeout: float = 60) -> list[str]:
        """Apply CRD manifests and wait until the apiserver serves them."""
        files = [p for path in paths for p in ([path] if path.is_file() else sorted(path.glob("*.yaml")))]
        if not files:
            return []
        args = [a for f in files for a in ("-f", str(f))]
        out = self.kubectl("apply", "--server-side", "-o", "name", *args, timeout=timeout)
        names = [n for n in out.stdout.split() if n.startswith("customresourcedefinition")]
        if names:
            self.kubectl("wait", "--for=condition=Established", f"--timeout={int(timeout)}s",
                         *names, timeout=timeout + 10)
        return names

    # -- internals ---------------------------------------------------------

    def _write_pki(self) -> None:
        d = self._pki
        d.mkdir(exist_ok=True)
        serving_ca = certs.new_ca("lockgate-test-serving-ca")
        serving = certs.serving_cert(serving_ca, self.service_ip, self.address)
        client_ca = certs.new_ca("lockgate-test-client-ca")
        self._admin = certs.client_cert(client_ca, "admin", ("system:masters",))
        sa_key = certs.signing_key()

        (d / "serving-ca.crt").write_bytes(serving_ca.cert_pem)
        (d / "apiserver.crt").write_bytes(serving.cert_pem + serving_ca.cert_pem)
        certs.write_private(d / "apiserver.key", serving.key_pem)
        (d / "client-ca.crt").write_bytes(client_ca.cert_pem)
        (d / "admin.crt").write_bytes(self._admin.cert_pem)
        certs.write_private(d / "admin.key", self._admin.key_pem)
        (d / "sa.pub").write_bytes(certs.public_pem(sa_key))
        certs.write_private(d / "sa.key", certs.private_pem(sa_key))
        self._serving_ca_pem = serving_ca.cert_pem

        self._ssl = ssl.create_default_context(cafile=str(d / "serving-ca.crt"))
        self._ssl.load_cert_chain(str(d / "admin.crt"), str(d / "admin.key"))

    def _ca_only_ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self._pki / "serving-ca.crt"))

    def _start_etcd(self, timeout: float) -> None:
        # tmpfs: etcd fsyncs every write; on disk that makes the API slow.
        shm = Path("/dev/shm")
        base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
        _remove_orphaned_etcd_dirs(Path(base or tempfile.gettempdir()))
        self._etcd_data = Path(tempfile.mkdtemp(prefix=_ETCD_PREFIX, dir=base))
        (self._etcd_data / "owner.pid").write_text(str(os.getpid()))
        client, peer = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
        argv = [
            str(self.binaries.etcd), "--name=default", f"--data-dir={self._etcd_data / 'data'}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}", "--log-level=warn",
        ]
        if _has_flag(self.binaries.etcd, "--unsafe-no-fsync"):  # etcd >= 3.5
            argv.append("--unsafe-no-fsync")
        self._etcd = LoggedProcess("etcd", argv, self.workdir / "etcd.log")
        self._etcd_url = client
        etcd = self._etcd

        def healthy() -> bool:
            etcd.ensure_alive()
            return http_ok(f"{client}/health", b'"health":"true"')

        wait_until(healthy, timeout, "etcd /health")

    def _start_apiserver(self, timeout: float) -> None:
        port = free_port()
        self.server = f"https://{self.address}:{port}"
        d = self._pki
        argv = [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers={self._etcd_url}",
            f"--bind-address={self.address}", f"--advertise-address={self.address}",
            f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={d / 'apiserver.crt'}", f"--tls-private-key-file={d / 'apiserver.key'}",
            f"--client-ca-file={d / 'client-ca.crt'}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={self.server}",
            f"--service-account-key-file={d / 'sa.pub'}",
            f"--service-account-signing-key-file={d / 'sa.key'}",
            f"--service-cluster-ip-range={self.service_cidr}",
            # As strict as OpenShift: setting blockOwnerDeletion needs RBAC on the owner.
            "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
            "--allow-privileged=true",
        ]
        if self.in_cluster:
            # Nodes are reached by address (logs, exec): no DNS resolves their names.
            argv.append("--kubelet-preferred-address-types=InternalIP")
        else:
            argv += [
                # Pods would be refused for want of a `default` ServiceAccount,
                # which only kube-controller-manager creates.
                "--disable-admission-plugins=ServiceAccount",
                # The `kubernetes` Endpoints may not hold a loopback address; without
                # this the apiserver logs a failed sync every ten seconds.
                "--endpoint-reconciler-type=none",
            ]
        self._apiserver = LoggedProcess("kube-apiserver", argv, self.workdir / "kube-apiserver.log")
        apiserver = self._apiserver
        assert self._ssl is not None
        ctx = self._ssl

        def ready() -> bool:
            apiserver.ensure_alive()
            return http_ok(f"{self.server}/readyz", b"ok", ctx)

        wait_until(ready, timeout, "kube-apiserver /readyz")
        self._write_kubeconfig(
            self.kubeconfig, "admin",
            {"client-certificate-data": _b64(self._admin.cert_pem),
             "client-key-data": _b64(self._admin.key_pem)},
        )

    def _write_kubeconfig(self, path: Path, user: str, credentials: dict[str, str]) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "lockgate", "cluster": {
                "server": self.server, "certificate-authority-data": _b64(self._serving_ca_pem)}}],
            "users": [{"name": user, "user": credentials}],
            "contexts": [{"name": user, "context": {"cluster": "lockgate", "user": user}}],
            "current-context": user,
        }
        certs.write_private(path, yaml.safe_dump(config, sort_keys=False).encode())


def _remove_orphaned_etcd_dirs(base: Path) -> None:
    """etcd data of runs that were killed outright: it sits in RAM on tmpfs."""
    for d in base.glob(f"{_ETCD_PREFIX}*"):
        try:
            os.kill(int((d / "owner.pid").read_text()), 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (OSError, ValueError):
            pass  # another user's, or being created right now


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _has_flag(binary: Path, flag: str) -> bool:
    out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=30, check=False)
    return flag in out.stdout + out.stderr


def http_ok(url: str, expect: bytes, ctx: ssl.SSLContext | None = None) -> bool:
    """One short GET; any connection error just means 'not yet'."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
            return resp.status == 200 and expect in resp.read()
    except OSError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """Run a control plane in the foreground until Ctrl-C (for `make dev-cluster`)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m tests.kube.controlplane", description=main.__doc__)
    p.add_argument("--kubeconfig", type=Path, help="also copy the admin kubeconfig here")
    p.add_argument("--crds", type=Path, action="append", default=[],
                   help="CRD file or folder of *.yaml to install (repeatable)")
    args = p.parse_args(argv)

    binaries = locate_binaries()
    with ControlPlane(binaries) as cp:
        names = cp.install_crds(args.crds)
        kubeconfig = cp.kubeconfig
        if args.kubeconfig:
            args.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cp.kubeconfig, args.kubeconfig)
            os.chmod(args.kubeconfig, 0o600)
            kubeconfig = args.kubeconfig
        v = binaries.versions
        print(f"kube-apiserver {v.get('k8s', '?')}, etcd {v.get('etcd', '?')} at {cp.server}")
        for n in names:
            print(f"installed {n}")
        print(f"logs: {cp.workdir}")
        print(f"\nexport KUBECONFIG={kubeconfig}\n\nCtrl-C stops the cluster (its data is discarded).",
              flush=True)
        return serve_until_stopped(cp.processes)


if __name__ == "__main__":
    sys.exit(main())
