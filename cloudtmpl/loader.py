"""YAML loading that remembers where every node came from.

A :class:`Document` holds the plain Python data of a YAML file (dicts, lists,
str, int, float, bool, None) together with two location maps keyed by *path*
(a tuple of mapping keys and list indexes from the document root):

* ``locs[path]``     -- where the *value* at ``path`` starts;
* ``key_locs[path]`` -- where the mapping *key* of the entry at ``path`` starts
  (only for paths whose last element is a mapping key).

Diagnostics about a value (wrong type, bad constraint) point at ``loc(path)``;
diagnostics about a key (unknown key, duplicate key) point at ``key_loc(path)``.
All locations are 1-based ``file:line:col``.

As in Heat, YAML timestamps are *not* converted: ``heat_template_version:
2016-10-14`` loads as the string ``"2016-10-14"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cloudtmpl.diagnostics import Diagnostic, DiagnosticError, Loc, error

Path = tuple[str | int, ...]

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAX_DEPTH = 200


@dataclass(frozen=True)
class Document:
    """A loaded YAML file: its text, plain data and source locations."""

    file: str
    text: str
    data: Any
    locs: Mapping[Path, Loc] = field(default_factory=dict)
    key_locs: Mapping[Path, Loc] = field(default_factory=dict)

    def loc(self, path: Path) -> Loc:
        """Location of the value at ``path``, else of its nearest ancestor."""
        p = tuple(path)
        while True:
            found = self.locs.get(p)
            if found is not None:
                return found
            if not p:
                return Loc(self.file)
            p = p[:-1]

    def key_loc(self, path: Path) -> Loc:
        """Location of the mapping key of the entry at ``path`` (else :meth:`loc`)."""
        found = self.key_locs.get(tuple(path))
        return found if found is not None else self.loc(path)

    def get(self, path: Path, default: Any = None) -> Any:
        """The value at ``path`` or ``default`` when any step is missing."""
        value = self.data
        for part in path:
            in_map = isinstance(value, Mapping) and part in value
            in_list = isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)
            if not (in_map or in_list):
                return default
            value = value[part]
        return value


def _mark_loc(file: str, mark: Any) -> Loc:
    if mark is None:
        return Loc(file)
    return Loc(file, mark.line + 1, mark.column + 1)


class _Builder:
    """Turns a composed YAML node graph into plain data plus location maps."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.locs: dict[Path, Loc] = {}
        self.key_locs: dict[Path, Loc] = {}
        self.diags: list[Diagnostic] = []
        self._scalars = SafeConstructor()

    def build(self, node: Node, path: Path, active: tuple[int, ...] = ()) -> Any:
        self.locs[path] = _mark_loc(self.file, node.start_mark)
        if id(node) in active or len(active) > _MAX_DEPTH:
            self.diags.append(Diagnostic(
                "yaml-syntax", "recursive YAML alias", self.locs[path],
                "a YAML alias must not refer to a node that contains it"))
            return None
        active = (*active, id(node))
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i), active) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            return self._mapping(node, path, active)
        return None  # pragma: no cover - yaml has no other node kinds

    def _scalar(self, node: ScalarNode, path: Path) -> Any:
        if node.tag == _TIMESTAMP_TAG:
            return node.value
        try:
            return self._scalars.construct_object(node, deep=True)
        except ConstructorError as exc:
            self.diags.append(Diagnostic(
                "yaml-syntax", f"cannot read YAML value: {exc.problem}",
                _mark_loc(self.file, exc.problem_mark or node.start_mark),
                "remove the custom tag (only plain YAML values are supported)"))
            return None

    def _mapping(self, node: MappingNode, path: Path, active: tuple[int, ...]) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key_loc = _mark_loc(self.file, key_node.start_mark)
            if key_node.tag == _MERGE_TAG:
                self.diags.append(Diagnostic(
                    "yaml-syntax", "YAML merge keys ('<<') are not supported", key_loc,
                    "write the keys out explicitly"))
                continue
            if not isinstance(key_node, ScalarNode):
                self.diags.append(Diagnostic(
                    "yaml-syntax", "a mapping key must be a plain scalar", key_loc,
                    "use a string as the key"))
                continue
            key = self._scalar(key_node, path)
            if key in out:
                first = self.key_locs.get((*path, key))
                where = f" (first defined at line {first.line})" if first else ""
                self.diags.append(Diagnostic(
                    "duplicate-key", f"duplicate key '{key}'{where}", key_loc,
                    "remove one of the entries; YAML would silently keep only the last"))
                continue
            self.key_locs[(*path, key)] = key_loc
            out[key] = self.build(value_node, (*path, key), active)
        return out


# libyaml's C parser when PyYAML has it (about ten times faster on large
# templates); it reports the same line and column marks.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError:
        if _LOADER is yaml.SafeLoader:
            raise
        # the pure-Python parser words its errors better ("found character '\\t'")
        return yaml.compose(text, Loader=yaml.SafeLoader)


def load_text(text: str, file: str = "<string>") -> Document:
    """Parse YAML ``text`` whose top level must be a mapping."""
    try:
        node = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        if exc.context:
            problem = f"{exc.context}: {problem}"
        hint = "check indentation, a missing ':' or an unclosed quote or bracket near here"
        if "\\t" in problem or "\t" in problem:
            hint = "YAML forbids tabs for indentation; use spaces"
        elif "single document" in problem:
            hint = "a template is one YAML document; remove the extra '---'"
        raise error("yaml-syntax", f"malformed YAML: {problem}", _mark_loc(file, mark),
                    hint) from None
    except yaml.YAMLError as exc:
        raise error("yaml-syntax", f"malformed YAML: {exc}", Loc(file),
                    "the file must be UTF-8 YAML text") from None
    if node is None:
        raise error("not-a-mapping", "the file is empty", Loc(file, 1, 1),
                    "a template is a YAML mapping starting with 'heat_template_version:'")
    builder = _Builder(file)
    data = builder.build(node, ())
    if builder.diags:
        raise DiagnosticError(builder.diags)
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__} value"
        raise error("not-a-mapping", f"the top level is {kind}, not a mapping",
                    builder.locs.get((), Loc(file, 1, 1)),
                    "a template or environment is a YAML mapping of sections "
                    "(e.g. 'heat_template_version:', 'resources:')")
    return Document(file, text, data, builder.locs, builder.key_locs)


def load_file(path: str) -> Document:
    """Read and parse a YAML file; an unreadable file is a ``file-not-found`` diagnostic."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise error("file-not-found", f"no such file: {path}", Loc(path),
                    "check the path (it is relative to the current directory)") from None
    except IsADirectoryError:
        raise error("file-not-found", f"{path} is a directory, not a file", Loc(path),
                    "pass the template file itself") from None
    except UnicodeDecodeError as exc:
        raise error("file-not-found", f"cannot read {path}: not UTF-8 text ({exc.reason})",
                    Loc(path), "save the file as UTF-8") from None
    except OSError as exc:
        raise error("file-not-found", f"cannot read {path}: {exc.strerror}", Loc(path),
                    "check the file's permissions") from None
    return load_text(text, path)
