"""The argocd-cm patch and docs/argocd.md carry exactly the health.lua files;
the example Applications sync the chart before the resources."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
HEALTH = REPO / "deploy" / "argocd" / "health" / "lockgate.io"
KINDS = ("ApiKey", "Budget", "MCPServer", "ModelProvider", "Route")


def health_keys(data: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in data.items() if k.startswith("resource.customizations.health.")}


def expected() -> dict[str, str]:
    return {f"resource.customizations.health.lockgate.io_{kind}": (HEALTH / kind / "health.lua").read_text("utf-8")
            for kind in KINDS}


def test_patch_file_matches_the_lua_files() -> None:
    patch = yaml.safe_load((REPO / "deploy" / "argocd" / "argocd-cm-health.yaml").read_text(encoding="utf-8"))
    assert health_keys(patch["data"]) == expected()


def test_docs_snippet_matches_the_lua_files() -> None:
    doc = (REPO / "docs" / "argocd.md").read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- BEGIN argocd-cm-health[^>]*-->\n```yaml\n(.*?)```\n<!-- END", doc, re.S)
    assert len(blocks) == 1
    assert health_keys(yaml.safe_load(blocks[0])["data"]) == expected()


def test_generator_check_mode_agrees() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "hack" / "argocd_cm.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def wave(app: dict[str, Any]) -> int:
    return int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])


def chart_objects(app: dict[str, Any]) -> list[dict[str, Any]]:
    """What Argo CD applies for a Helm Application: `helm template` with its release name, namespace and values."""
    from tests.unit.chart_support import run_helm

    source = app["spec"]["source"]
    with tempfile.TemporaryDirectory() as tmp:
        values = Path(tmp) / "values.yaml"
        values.write_text(yaml.safe_dump(source["helm"]["valuesObject"]), encoding="utf-8")
        out = run_helm(["template", source["helm"]["releaseName"], str(REPO / source["path"]), "--include-crds",
                        "--namespace", app["spec"]["destination"]["namespace"], "--values", str(values)]).stdout
    return [o for o in yaml.safe_load_all(out) if o]


def test_applications_sync_chart_before_resources() -> None:
    docs = list(yaml.safe_load_all((REPO / "deploy" / "argocd" / "applications.yaml").read_text(encoding="utf-8")))
    apps = {a["metadata"]["name"]: a for a in docs if a["kind"] == "Application"}
    namespaces = {n["metadata"]["name"]: wave(n) for n in docs if n["kind"] == "Namespace"}
    chart, resources = apps["lockgate"], apps["lockgate-resources"]
    assert wave(chart) < wave(resources)
    # Every namespace an Application writes into exists in an earlier wave: each namespace of what
    # the chart renders with the Application's values (its own, and a Role and a KopfPeering in each
    # watched one), and the resources' destination.
    rendered = chart_objects(chart)
    assert {o["kind"] for o in rendered} >= {"Role", "KopfPeering", "StatefulSet", "Deployment"}
    into_by_chart = {o["metadata"].get("namespace") or chart["spec"]["destination"]["namespace"] for o in rendered
                     if o["kind"] not in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding")}
    for app, needs in ((chart, sorted(into_by_chart)), (resources, [resources["spec"]["destination"]["namespace"]])):
        for ns in needs:
            assert namespaces.get(ns, 0) < wave(app), f"{app['metadata']['name']} writes into {ns} before it exists"
        assert "retry" in app["spec"]["syncPolicy"], "a first sync on an empty cluster may need another try"
    assert (REPO / chart["spec"]["source"]["path"] / "Chart.yaml").is_file()
    assert "ServerSideApply=true" in chart["spec"]["syncPolicy"]["syncOptions"]
    assert "SkipDryRunOnMissingResource=true" in resources["spec"]["syncPolicy"]["syncOptions"]
    watched = chart["spec"]["source"]["helm"]["valuesObject"]["operator"]["watchNamespaces"]
    assert resources["spec"]["destination"]["namespace"] in watched
