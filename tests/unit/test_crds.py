"""The committed CRDs are what the models generate, they are structural, and
every example manifest passes their schemas."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import yaml

from lockgate.api.crdgen import render_all
from lockgate.api.resources import KINDS

from tests.unit.crd_schema import problems, structural_problems

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
MANIFEST_FOLDERS = [ROOT / "examples", ROOT.parent / "shared" / "contract", Path(__file__).parent / "golden" / "contract"]


@cache
def _schemas() -> dict[str, dict]:
    out = {}
    for text in render_all().values():
        crd = yaml.safe_load(text)
        out[crd["spec"]["names"]["kind"]] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return out


def test_committed_crds_match_the_models() -> None:
    expected = render_all()
    committed = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    stale = sorted(name for name in expected if committed.get(name) != expected[name])
    extra = sorted(set(committed) - set(expected))
    assert not stale and not extra, f"crds/ is stale ({stale}, unexpected {extra}): run `make crds`"
    assert not [n for n, text in expected.items() if "&id0" in text], "YAML aliases make the CRDs hard to read"


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_schemas_are_structural(kind: str) -> None:
    assert structural_problems(_schemas()[kind]) == []


def test_crds_carry_names_columns_and_the_status_subresource() -> None:
    for text in render_all().values():
        crd = yaml.safe_load(text)
        names, version = crd["spec"]["names"], crd["spec"]["versions"][0]
        assert names["categories"] == ["lockgate"] and names["shortNames"]
        assert version["subresources"] == {"status": {}}
        assert {"Ready", "Age"} <= {c["name"] for c in version["additionalPrinterColumns"]}
        assert crd["metadata"]["name"] == f"{names['plural']}.lockgate.io"


def test_cel_rules_and_descriptions_reach_the_schema() -> None:
    spec = _schemas()["MCPServer"]["properties"]["spec"]
    assert "exactly one of upstream, tools, aggregate and modelTools" in str(spec["x-kubernetes-validations"])
    provider = _schemas()["ModelProvider"]["properties"]["spec"]
    assert provider["properties"]["service"]["properties"]["port"] == {
        "description": "Port name or number, as in the Service's EndpointSlices.", "x-kubernetes-int-or-string": True,
    }
    assert provider["properties"]["priority"]["maximum"] == 100


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_every_field_is_described(kind: str) -> None:
    """What `kubectl explain` shows comes from these descriptions."""
    missing: list[str] = []

    def walk(node: dict, path: str) -> None:
        for key, child in (node.get("properties") or {}).items():
            if not child.get("description") and f"{path}.{key}" != f"{kind}.metadata":  # Kubernetes' own
                missing.append(f"{path}.{key}")
            walk(child, f"{path}.{key}")
        if "items" in node:
            walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}.*")

    walk(_schemas()[kind], kind)
    assert missing == []


def test_list_maps_refuse_duplicates_and_defaults_are_in_the_schema() -> None:
    provider = _schemas()["ModelProvider"]["properties"]
    models = provider["spec"]["properties"]["models"]
    assert (models["x-kubernetes-list-type"], models["x-kubernetes-list-map-keys"]) == ("map", ["name"])
    conditions = provider["status"]["properties"]["conditions"]
    assert (conditions["x-kubernetes-list-type"], conditions["x-kubernetes-list-map-keys"]) == ("map", ["type"])
    assert provider["spec"]["properties"]["timeouts"]["properties"]["firstToken"]["default"] == "60s"
    twice = {"apiVersion": "lockgate.io/v1alpha1", "kind": "ModelProvider", "metadata": {"name": "x"},
             "spec": {"type": "openai-compatible", "endpoint": "http://a/v1", "models": [{"name": "m"}, {"name": "m"}]}}
    assert problems(twice, _schemas()["ModelProvider"]) == ["spec.models: duplicate entry ('m',)"]


def _examples() -> list[tuple[str, dict]]:
    found = []
    for folder in MANIFEST_FOLDERS:
        for file in sorted(folder.rglob("*.yaml")) if folder.is_dir() else []:
            for doc in yaml.safe_load_all(file.read_text()):
                if doc and str(doc.get("apiVersion", "")).startswith("lockgate.io/"):
                    found.append((f"{file.relative_to(folder.parent)}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return found


@pytest.mark.parametrize(("where", "doc"), _examples(), ids=[w for w, _ in _examples()])
def test_example_manifests_pass_the_schema(where: str, doc: dict) -> None:
    assert problems(doc, _schemas()[doc["kind"]]) == []


def test_the_validator_notices_a_bad_manifest() -> None:
    bad = {"apiVersion": "lockgate.io/v1alpha1", "kind": "ModelProvider", "metadata": {"name": "x"},
           "spec": {"type": "nope", "models": [{"name": "m", "extraField": 1}], "priority": 1000}}
    found = problems(bad, _schemas()["ModelProvider"])
    assert any("not in" in p for p in found) and any("unknown field" in p for p in found)
    assert any("out of bounds" in p for p in found)
