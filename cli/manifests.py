"""Reading manifests from files: multi-document YAML (or JSON), files and
folders, the way `kubectl apply -f` takes them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

SUFFIXES = (".yaml", ".yml", ".json")


class ManifestError(ValueError):
    """A file that cannot be read or parsed; says which and where."""


def manifest_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files named, and the manifest files under the folders named,
    in a stable order; hidden files and folders are skipped."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(
                p for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix in SUFFIXES and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            files.append(path)
        else:
            raise ManifestError(f"{path}: no such file or folder")
    return files


def load_manifests(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for file in manifest_files(paths):
        try:
            documents = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
        except yaml.YAMLError as exc:
            raise ManifestError(f"{file}: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{file}: {exc}") from None
        for doc in documents:
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise ManifestError(f"{file}: a document is a {type(doc).__name__}, not an object")
            if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
                objects.extend(item for item in doc.get("items") or [] if isinstance(item, dict))
            else:
                objects.append(doc)
    return objects
