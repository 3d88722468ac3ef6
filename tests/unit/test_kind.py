"""kind-config.yaml, deploy/kind/values.yaml and docs/kind.md agree with each other and the chart."""

from __future__ import annotations

import re

import yaml
from tests.unit.chart_support import REPO, one, render

KIND_VALUES = REPO / "deploy" / "kind" / "values.yaml"


def test_node_port_is_published_on_the_host() -> None:
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text(encoding="utf-8"))
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4" and config["kind"] == "Cluster"
    (mapping,) = [m for node in config["nodes"] for m in node.get("extraPortMappings", [])]
    values = yaml.safe_load(KIND_VALUES.read_text(encoding="utf-8"))
    assert mapping["containerPort"] == values["proxy"]["service"]["nodePort"]
    assert mapping["hostPort"] == 8080 and mapping["listenAddress"] == "127.0.0.1"


def test_chart_renders_for_kind() -> None:
    objs = render([KIND_VALUES])
    svc = one(objs, "Service", "-proxy")["spec"]
    assert svc["type"] == "NodePort" and svc["ports"][0]["nodePort"] == 30080
    for deploy in [one(objs, "Deployment", "-proxy"), one(objs, "Deployment", "-operator")]:
        (container,) = deploy["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "lockgate:dev" and container["imagePullPolicy"] == "Never"
    (operator,) = one(objs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"]
    assert "--namespace=ai-gateway" in operator["args"]


def test_docs_use_the_same_names() -> None:
    doc = (REPO / "docs" / "kind.md").read_text(encoding="utf-8")
    assert "kind create cluster --name lockgate --config kind-config.yaml" in doc
    assert "docker build -t lockgate:dev ." in doc
    assert "kind load docker-image lockgate:dev --name lockgate" in doc
    assert "--values deploy/kind/values.yaml" in doc
    assert "http://127.0.0.1:8080/v1/models" in doc
    # Repository paths the guide names exist (examples/contract/ lands separately).
    for path in re.findall(r"(?<![\w/.-])((?:charts|deploy|docs)/[\w./-]+|kind-config\.yaml)", doc):
        assert (REPO / path.rstrip(".")).exists(), path
