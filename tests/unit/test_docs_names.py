"""Every repository path, namespace and chart values key the docs name exists:
a reader who copies a command or a setting from the docs finds what it names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted([REPO / "README.md", REPO / "charts" / "lockgate" / "README.md", *(REPO / "docs").glob("*.md")])
TOP = ("api", "charts", "cli", "crds", "deploy", "docs", "examples", "hack", "operator", "proxy", "tests", "bench")
PATH = re.compile(r"(?<![\w/.<>$-])((?:%s)/[\w./-]*|kind-config\.yaml|Makefile|Dockerfile)" % "|".join(TOP))
VALUES = yaml.safe_load((REPO / "charts" / "lockgate" / "values.yaml").read_text(encoding="utf-8"))
VALUE_KEY = re.compile(r"(?<![\w./-])((?:%s)(?:\.[A-Za-z][A-Za-z0-9]*)+)(?![\w/-])" % "|".join(VALUES))
# Docs about installing and running the chart; the others name CRD fields (`metrics.interval` of a
# ModelProvider), which look like values keys and are not.
CHART_DOCS = [d for d in DOCS if d.name in ("README.md", "kind.md", "argocd.md", "operations.md", "operator.md")]
SET_FLAG = re.compile(r"--set[= ]'?([\w.]+)=")
NAMESPACE_FLAG = re.compile(r"(?:\s-n|--namespace)[= ]([a-z0-9][a-z0-9-]*)\b")
# Namespaces of other software the docs address (Argo CD's own).
ELSEWHERE = {"argocd"}


def doc_id(path: Path) -> str:
    return str(path.relative_to(REPO))


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```(?:sh|bash|console)?\n(.*?)```", text, re.S)


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_named_paths_exist(doc: Path) -> None:
    missing = sorted({p for p in PATH.findall(doc.read_text(encoding="utf-8"))
                      if not (REPO / p.rstrip(".,:;)")).exists()})
    assert not missing, f"{doc_id(doc)} names paths that do not exist: {missing}"


def resolves(key: str) -> bool:
    node: Any = VALUES
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


@pytest.mark.parametrize("doc", CHART_DOCS, ids=doc_id)
def test_named_values_keys_exist(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    named = set(re.findall(r"`([^`\s]+)`", text)) | set(SET_FLAG.findall(text))
    keys = {m.group(1) for word in named for m in [VALUE_KEY.fullmatch(word.split("=")[0])] if m
            and not m.group(1).endswith((".py", ".md", ".yaml", ".json"))}
    unknown = sorted(k for k in keys if not resolves(k))
    assert not unknown, f"{doc_id(doc)} names values keys the chart does not have: {unknown}"


def namespaces_that_exist() -> set[str]:
    """Namespaces the docs' commands create, and those the examples and deploy manifests define."""
    found = set(ELSEWHERE)
    for doc in DOCS:
        for block in code_blocks(doc.read_text(encoding="utf-8")):
            found |= set(re.findall(r"kubectl create namespace ([a-z0-9-]+)", block))
            for command in block.replace("\\\n", " ").splitlines():
                if "--create-namespace" in command:
                    found |= set(NAMESPACE_FLAG.findall(command))
    for manifest in [*(REPO / "examples").rglob("*.yaml"), *(REPO / "deploy").rglob("*.yaml")]:
        for obj in yaml.safe_load_all(manifest.read_text(encoding="utf-8")):
            if isinstance(obj, dict) and obj.get("kind") in ("Namespace", "Kustomization"):
                found.add(obj["metadata"]["name"] if obj["kind"] == "Namespace" else obj.get("namespace", ""))
    return found - {""}


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_namespaces_in_commands_exist(doc: Path) -> None:
    exists = namespaces_that_exist()
    used = {ns for block in code_blocks(doc.read_text(encoding="utf-8")) for ns in NAMESPACE_FLAG.findall(block)}
    assert not used - exists, f"{doc_id(doc)} runs commands in namespaces nothing creates: {sorted(used - exists)}"


def test_the_checks_catch_what_they_look_for() -> None:
    assert PATH.findall("see examples/contract/ and charts/lockgate") == ["examples/contract/", "charts/lockgate"]
    assert not (REPO / "examples" / "contract").exists()
    assert resolves("proxy.quota.store") and not resolves("proxy.quota.stor")
    assert VALUE_KEY.fullmatch("proxy.adminPort") and not VALUE_KEY.fullmatch("lockgate.proxy.server")
    assert NAMESPACE_FLAG.findall("kubectl -n quickstart get x; helm install --namespace=lockgate-system") == [
        "quickstart", "lockgate-system"]
