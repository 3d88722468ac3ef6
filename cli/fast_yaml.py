"""YAML documents to Python objects, fast, and exactly as `yaml.safe_load_all` makes them.

First try: ryaml, a YAML 1.2 parser in Rust, about five times faster than
libyaml. YAML 1.2 and PyYAML's 1.1 read some plain scalars differently
(`yes`, `0755`, `1:20`, `1e3`, dates, `<<`), and ryaml knows no tags, so its
result is kept only when the two cannot differ: no tag, directive or `0o`
in the text, no float or date in the result, and no string that PyYAML
would have read as something else had it been plain (it may have been).
Anything else, and anything ryaml refuses (duplicate keys, say), is read
by the second way.

Second way: libyaml composes the nodes, a short walk builds plain dicts,
lists and strings from them.

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

import ryaml
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

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
    quick = _quick(text)
    return iter(quick) if quick is not None else _composed(text)


_NOT_QUICK = ("!", "\n%", "0o")  # tags, directives (a line starting with %), and 1.2's octal ints (strings in 1.1)
_RESOLVER = Resolver()
_PLAIN = (True, False)  # resolve as a plain scalar


def _quick(text: str) -> list[Any] | None:
    """The documents as ryaml reads them, or None where PyYAML could read them otherwise."""
    if text.startswith("%") or any(mark in text for mark in _NOT_QUICK):
        return None
    try:
        documents = ryaml.loads_all(text)
    except Exception:  # noqa: BLE001 - whatever ryaml refuses, PyYAML reads (or explains)
        return None
    if documents is None:
        return []
    if documents == [None]:  # a comment alone is no document to PyYAML, a null one to ryaml
        return None
    seen: dict[str, str] = {}  # per text: nothing read, a Secret's value included, outlives the load
    try:
        return [_same(doc, seen) for doc in documents]
    except _Unusual:
        return None


def _same(value: Any, seen: dict[str, str]) -> Any:
    """`value` with its short strings interned; _Unusual where PyYAML might have read it otherwise."""
    kind = type(value)
    if kind is str:
        known = seen.get(value)
        if known is None:
            if _RESOLVER.resolve(ScalarNode, value, _PLAIN) != STR:  # 'yes', '010', '': quoted, or not?
                raise _Unusual
            known = seen[value] = sys.intern(value) if len(value) <= _INTERN_MAX else value
        return known
    if kind is dict:
        return {_same(k, seen): _same(v, seen) for k, v in value.items()}
    if kind is list:
        return [_same(item, seen) for item in value]
    if kind is int or kind is bool or value is None:  # spelt alike in both (0o and octal excluded above)
        return value
    raise _Unusual  # floats (1e3 is a string in 1.1), dates, anything else


def _composed(text: str) -> Iterator[Any]:
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
