"""The chart's CRD templates: copies of crds/, kept by hack/sync-chart-crds.sh."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.unit.chart_support import CHART, REPO, Obj, of_kind, render

SCRIPT = REPO / "hack" / "sync-chart-crds.sh"
SAMPLE_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.lockgate.io
  annotations:
    lockgate.io/generator: test
spec:
  group: lockgate.io
  scope: Namespaced
  names: {kind: Widget, plural: widgets}
  versions:
    - name: v1alpha1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          description: "Answers are rendered with {{ body }}; a lone }} too"
          properties:
            spec:
              type: object
              description: |
                Several lines, as generated descriptions have.
                  Indented: {{ jsonify(x) }}
                lockgate.io/chart-keep: not a placeholder
              additionalProperties: {type: string}
              x-kubernetes-validations:
                - rule: "self.size() <= 64"
                  message: "at most 64 keys"
"""


def sync(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable}  # this interpreter has PyYAML
    return subprocess.run(["bash", str(root / "hack" / "sync-chart-crds.sh"), *args],
                          capture_output=True, text=True, timeout=60, env=env)


def without_chart_metadata(crd: Obj) -> Obj:
    """A rendered CRD minus what the chart adds, to compare with its source."""
    meta = crd["metadata"]
    labels = {k: v for k, v in meta.get("labels", {}).items()
              if not k.startswith(("app.kubernetes.io/", "helm.sh/"))}
    notes = {k: v for k, v in meta.get("annotations", {}).items()
             if not k.startswith(("helm.sh/", "argocd.argoproj.io/"))}
    meta = {k: v for k, v in meta.items() if k not in ("labels", "annotations")}
    if labels:
        meta["labels"] = labels
    if notes:
        meta["annotations"] = notes
    return {**crd, "metadata": meta}


def generated_crds(root: Path) -> list[Obj]:
    docs: list[Obj] = []
    for path in sorted((root / "crds").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


def test_chart_copies_are_current() -> None:
    """Fails when crds/ changed and the script was not run (or a copy was edited by hand)."""
    proc = sync(REPO, "--check")
    assert proc.returncode == 0, proc.stderr
    sources = generated_crds(REPO)
    if not sources:
        return  # crds/ not generated yet: nothing to compare
    rendered = sorted(of_kind(render(), "CustomResourceDefinition"), key=lambda c: c["metadata"]["name"])
    expected = sorted(sources, key=lambda c: c["metadata"]["name"])
    assert [without_chart_metadata(c) for c in rendered] == [without_chart_metadata(c) for c in expected]


@pytest.fixture()
def sandbox(tmp_path: Path) -> Path:
    """A copy of the chart and the script, with one generated CRD."""
    shutil.copytree(CHART, tmp_path / "charts" / "lockgate", ignore=shutil.ignore_patterns("crds"))
    (tmp_path / "charts" / "lockgate" / "crds").mkdir()
    shutil.rmtree(tmp_path / "charts" / "lockgate" / "templates" / "crds", ignore_errors=True)
    (tmp_path / "hack").mkdir()
    shutil.copy(SCRIPT, tmp_path / "hack")
    (tmp_path / "crds").mkdir()
    (tmp_path / "crds" / "lockgate.io_widgets.yaml").write_text(SAMPLE_CRD, encoding="utf-8")
    return tmp_path


def test_script_wraps_crds_for_helm(sandbox: Path) -> None:
    chart = sandbox / "charts" / "lockgate"
    assert sync(sandbox, "--check").returncode == 1, "a new CRD without its chart copy is stale"
    assert sync(sandbox).returncode == 0
    assert sync(sandbox, "--check").returncode == 0

    (crd,) = of_kind(render(chart=chart), "CustomResourceDefinition")
    assert without_chart_metadata(crd) == yaml.safe_load(SAMPLE_CRD), "Helm must not read the CRD's own braces"
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "Delete=false,Prune=false"
    assert crd["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"
    assert crd["metadata"]["labels"]["app.kubernetes.io/part-of"] == "lockgate"

    (crd,) = of_kind(render(chart=chart, sets=["crds.keep=false"]), "CustomResourceDefinition")
    assert not {"helm.sh/resource-policy", "argocd.argoproj.io/sync-options"} & crd["metadata"]["annotations"].keys()
    assert not of_kind(render(chart=chart, sets=["crds.install=false"]), "CustomResourceDefinition")


def test_script_drops_copies_of_removed_crds(sandbox: Path) -> None:
    assert sync(sandbox).returncode == 0
    copies = sandbox / "charts" / "lockgate" / "templates" / "crds"
    hand_written = copies / "keep-me.yaml"
    hand_written.write_text("# not generated\n", encoding="utf-8")
    (sandbox / "crds" / "lockgate.io_widgets.yaml").unlink()
    assert sync(sandbox).returncode == 0
    assert sorted(p.name for p in copies.iterdir()) == ["keep-me.yaml"]


def test_kopf_peering_crds_ship_with_the_chart() -> None:
    docs = [d for d in yaml.safe_load_all((CHART / "crds" / "kopf.dev_peerings.yaml").read_text(encoding="utf-8"))]
    assert {(d["spec"]["names"]["kind"], d["spec"]["scope"]) for d in docs} == {
        ("KopfPeering", "Namespaced"), ("ClusterKopfPeering", "Cluster")}
    for doc in docs:
        assert doc["metadata"]["name"] == f"{doc['spec']['names']['plural']}.kopf.dev"
