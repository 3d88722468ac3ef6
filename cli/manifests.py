"""Reading manifests from files: multi-document YAML (or JSON), files and
folders, the way `kubectl apply -f` takes them.

YAML is parsed by libyaml (PyYAML's C loader) when PyYAML was built with it,
and its nodes made into objects by `fast_yaml`.
A `ManifestCache` keeps each file's documents with its size and modification
time, so reading the same folder again parses only the files that changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from lockgate.cli import fast_yaml

SUFFIXES = (".yaml", ".yml", ".json")
SafeDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


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


Stamp = tuple[int, int, int]  # inode, size, modification time (ns)


class ManifestCache:
    """Each file's objects as last parsed, with the stamp the file had then."""

    def __init__(self) -> None:
        self.files: dict[Path, tuple[Stamp, list[dict[str, Any]]]] = {}
        self.parsed = 0  # files parsed (not taken from the cache), for tests and benchmarks

    def objects(self, file: Path) -> list[dict[str, Any]]:
        try:
            st = file.stat()
        except OSError as exc:
            raise ManifestError(f"{file}: {exc}") from None
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        known = self.files.get(file)
        if known is not None and known[0] == stamp:
            return known[1]
        objects = parse_file(file)
        self.parsed += 1
        self.files[file] = (stamp, objects)
        return objects

    def keep_only(self, files: Iterable[Path]) -> None:
        wanted = set(files)
        for gone in [f for f in self.files if f not in wanted]:
            del self.files[gone]


def parse_file(file: Path) -> list[dict[str, Any]]:
    """The objects of one manifest file (a List's items unpacked); ManifestError says what is wrong."""
    try:
        documents = list(fast_yaml.load_all(file.read_text(encoding="utf-8")))
    except yaml.YAMLError as exc:
        raise ManifestError(f"{file}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{file}: {exc}") from None
    objects: list[dict[str, Any]] = []
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


def load_manifests(paths: Iterable[str | Path], cache: ManifestCache | None = None) -> list[dict[str, Any]]:
    """Every object of the files and folders named; with a cache, unchanged files are not parsed again
    (their objects are shared with the previous read: treat them as read-only)."""
    files = manifest_files(paths)
    if cache is None:
        return [obj for file in files for obj in parse_file(file)]
    objects = [obj for file in files for obj in cache.objects(file)]
    cache.keep_only(files)
    return objects
