"""Reading manifests from disk as `kubectl apply -f` does, and `lockgate crds`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lockgate.api.crdgen import render_all
from lockgate.cli.manifests import ManifestError, load_manifests
from lockgate.cli.main import main


def test_folders_files_lists_and_json(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "a.yaml").write_text("kind: A\n---\n# only a comment\n---\nkind: B\n")
    (tmp_path / "sub" / "c.yml").write_text("kind: List\napiVersion: v1\nitems: [{kind: C1}, {kind: C2}]\n")
    (tmp_path / "sub" / "d.json").write_text(json.dumps({"kind": "D"}))
    (tmp_path / "notes.txt").write_text("kind: ignored\n")
    (tmp_path / ".hidden" / "e.yaml").write_text("kind: Hidden\n")
    extra = tmp_path / "extra.manifest"
    extra.write_text("kind: Named\n")  # a file named explicitly is read whatever its suffix
    kinds = [o["kind"] for o in load_manifests([tmp_path, extra])]
    assert kinds == ["A", "B", "C1", "C2", "D", "Named"]


def test_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ManifestError, match="list.yaml"):
        load_manifests([tmp_path])
    with pytest.raises(ManifestError, match="no such file"):
        load_manifests([tmp_path / "absent"])


def test_crds_command_writes_the_generated_files(tmp_path: Path) -> None:
    assert main(["crds", "-o", str(tmp_path / "out")]) == 0
    written = {p.name: p.read_text() for p in (tmp_path / "out").iterdir()}
    assert written == render_all()
    assert sorted(written) == [
        "lockgate.io_apikeys.yaml", "lockgate.io_budgets.yaml", "lockgate.io_mcpservers.yaml",
        "lockgate.io_modelproviders.yaml", "lockgate.io_routes.yaml",
    ]
