"""The images the node tests run, built by hack/node-images.sh (buildah and
debootstrap, no registry) and cached as OCI archives outside the repository.
The project image is rebuilt only when its Dockerfile or sources change."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.kube.binaries import REPO, ControlPlaneError

SCRIPT = REPO / "hack" / "node-images.sh"


@dataclass(frozen=True)
class Image:
    ref: str  # the name containerd knows it by, e.g. localhost/lockgate:<hash>
    archive: Path

    @property
    def repository(self) -> str:
        return self.ref.rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        return self.ref.rsplit(":", 1)[1]


@dataclass(frozen=True)
class NodeImages:
    pause: Image
    base: Image  # Debian bookworm with Python 3.11: test pods run it
    redis: Image
    lockgate: Image  # the project's Dockerfile built on `base`

    @property
    def all(self) -> list[Image]:
        return [self.pause, self.base, self.redis, self.lockgate]


def build_images() -> NodeImages:
    out = subprocess.run(["bash", str(SCRIPT), "project"], stdout=subprocess.PIPE,
                         text=True, check=False, timeout=3600)
    if out.returncode != 0:
        raise ControlPlaneError(f"{SCRIPT} failed with exit code {out.returncode}")
    found: dict[str, Image] = {}
    for line in out.stdout.splitlines():
        name, _, rest = line.partition("=")
        ref, _, archive = rest.partition(" ")
        if ref and archive:
            found[name.lower()] = Image(ref, Path(archive))
    try:
        return NodeImages(**{k: found[k] for k in ("pause", "base", "redis", "lockgate")})
    except KeyError as e:
        raise ControlPlaneError(f"{SCRIPT} did not report the image {e}") from None
