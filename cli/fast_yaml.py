"""YAML documents to Python objects, fast: libyaml composes the nodes, a short
walk builds plain dicts, lists and strings from them.

PyYAML's own constructor spends most of a large manifest folder's load time
in generic machinery (generators for recursive structures, a dispatch per
node). Manifests are plain: mappings, sequences and scalars. Strings, the
common case, are taken as they are; any other scalar (numbers, booleans,
null, timestamps) goes through PyYAML's safe constructor, so values are
exactly what `yaml.safe_load` gives. A document with anything else (merge
keys, explicit tags, aliases that nest in themselves, keys that are not
scalars) is built by PyYAML's safe constructor, whole.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
STR = "tag:yaml.org,2002:str"
MAP = "tag:yaml.org,2002:map"
SEQ = "tag:yaml.org,2002:seq"


_TAGS: dict[tuple[type[Node], str | None, Any], str] = {}  # (kind, value, implicit) -> tag
_TAGS_MAX = 50_000
_INTERN_MAX = 64  # strings up to this length are interned: names, kinds and keys repeat in every document


class Loader(BaseLoader):
    """The loader with its tag resolution remembered: a folder of manifests has the same few
    thousand keys and words over and over, and resolving one is a string of regular expressions."""

    def resolve(self, kind: type[Node], value: str | None, implicit: Any) -> str:
        key = (kind, value, implicit)
        tag = _TAGS.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(_TAGS) >= _TAGS_MAX:
                _TAGS.clear()
            _TAGS[key] = tag
        return tag


class _Unusual(Exception):
    """A node the walk leaves to PyYAML's constructor."""


def load_all(text: str) -> Iterator[Any]:
    """As yaml.load_all(text, Loader=CSafeLoader): every document of `text`."""
    loader = Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            try:
                yield _build(loader, node, set())
            except _Unusual:
                yield loader.construct_document(node)
    finally:
        loader.dispose()


def _build(loader: yaml.SafeLoader, node: Node, open_nodes: set[int]) -> Any:
    if isinstance(node, ScalarNode):
        if node.tag == STR:
            value: str = node.value
            return sys.intern(value) if len(value) <= _INTERN_MAX else value
        if node.tag not in loader.yaml_constructors or node.tag.startswith("!"):
            raise _Unusual
        return loader.construct_object(node)  # int, float, bool, null, timestamp: as PyYAML makes them
    if id(node) in open_nodes:  # an alias inside itself
        raise _Unusual
    open_nodes.add(id(node))
    try:
        if isinstance(node, MappingNode) and node.tag == MAP:
            out: dict[Any, Any] = {}
            for key, value in node.value:
                if not isinstance(key, ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                    raise _Unusual
                out[_build(loader, key, open_nodes)] = _build(loader, value, open_nodes)
            return out
        if isinstance(node, SequenceNode) and node.tag == SEQ:
            return [_build(loader, item, open_nodes) for item in node.value]
        raise _Unusual
    finally:
        open_nodes.discard(id(node))
