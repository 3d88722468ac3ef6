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
from typing import TYPE_CHECKING, Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

if TYPE_CHECKING:
    BaseLoader = yaml.SafeLoader
else:
    BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
STR = "tag:yaml.org,2002:str"
MAP = "tag:yaml.org,2002:map"
SEQ = "tag:yaml.org,2002:seq"


_INTERN_MAX = 64  # strings up to this length are interned: names, kinds and keys repeat in every document


class Loader(BaseLoader):
    """The loader with its tag resolution remembered for the file it reads: the same keys and words
    come back in every document, and resolving one is a string of regular expressions. (Per file:
    nothing read, a Secret's value included, outlives the load.)"""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._tags: dict[tuple[type[Node], str | None, Any], str] = {}

    def resolve(self, kind: type[Node], value: str | None, implicit: Any) -> str:
        key = (kind, value, implicit)
        tag = self._tags.get(key)
        if tag is None:
            tag = self._tags[key] = super().resolve(kind, value, implicit)
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
            text: str = node.value
            return sys.intern(text) if len(text) <= _INTERN_MAX else text
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
