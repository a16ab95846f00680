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

Hostile input is refused early, with a diagnostic and bounded memory
(:class:`Limits`): text over 10 MiB (``input-too-large``; a file is not read
past the limit), nesting deeper than 100 levels (``nesting-too-deep``; libyaml's
composer recurses in C and would crash the process on ``[[[[…`` 100,000 deep),
and more than 500,000 nodes once aliases are expanded (``too-many-nodes``; a
"billion laughs" YAML bomb, anchors of aliases of aliases, is stopped after
reading a few lines).  Depth and node counts are taken in one pass over the
parser's events *before* anything is composed (only for text over 16 KiB or
with anchors: smaller text cannot get near the limits, and its nesting depth
is checked while it is turned into data).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    NodeEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cloudtmpl import limits as budget
from cloudtmpl.diagnostics import Diagnostic, DiagnosticError, Loc, error

Path = tuple[str | int, ...]

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_COLLECTION_TAGS = frozenset({"tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"})
_SMALL = 16 * 1024  # text this short, without anchors, is checked while it is built


@dataclass(frozen=True)
class Limits:
    """How much YAML one file may make cloudtmpl read, nest and expand."""

    max_bytes: int = budget.LIMITS.file_bytes  # characters of text (bytes of a file)
    max_depth: int = budget.LIMITS.yaml_depth  # nested collections, aliases expanded
    max_nodes: int = budget.LIMITS.yaml_nodes  # nodes after alias expansion (a YAML bomb)


LIMITS = Limits()


class _LimitExceeded(Exception):
    def __init__(self, code: str, message: str, mark: Any, hint: str) -> None:
        super().__init__(message)
        self.code, self.message, self.mark, self.hint = code, message, mark, hint


def _too_deep(limits: Limits, mark: Any) -> _LimitExceeded:
    return _LimitExceeded(
        "nesting-too-deep", f"the YAML nests deeper than {limits.max_depth} levels", mark,
        "flatten the structure: no template needs this much nesting (is the file generated "
        "or hostile?)")


def _too_many(limits: Limits, mark: Any) -> _LimitExceeded:
    return _LimitExceeded(
        "too-many-nodes",
        f"the YAML expands to more than {limits.max_nodes:,} values (each alias counted as "
        "a copy of what it names)", mark,
        "an alias ('*name') repeats its anchor's whole content and nested aliases multiply "
        "(a 'billion laughs' YAML bomb): write the data out, use fewer aliases, or split "
        "the template into nested templates")


def _check_events(text: str, limits: Limits, loader_class: Any) -> None:
    """One pass over the parser's events: depth, and node count with aliases expanded.

    Each alias counts as the expanded size of the node its anchor names, so the
    count grows exactly as the built data would, and a bomb is stopped at the
    first alias that passes the limit: time and memory stay proportional to the
    text read so far.  Parse errors propagate as ``yaml.YAMLError``.
    """
    loader = loader_class(text)
    max_depth, max_nodes = limits.max_depth, limits.max_nodes
    count = 0
    sizes: dict[str, int] = {}  # anchor -> expanded size of its node
    open_: list[tuple[str | None, int]] = []  # (anchor, count at start) per open collection
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, AliasEvent):
                count += sizes.get(event.anchor or "", 1)
            elif isinstance(event, CollectionStartEvent):
                count += 1
                open_.append((event.anchor, count - 1))
                if len(open_) > max_depth:
                    raise _too_deep(limits, event.start_mark)
            elif isinstance(event, CollectionEndEvent):
                anchor, start = open_.pop()
                if anchor is not None:
                    sizes[anchor] = count - start
                continue
            elif isinstance(event, NodeEvent):  # a scalar
                count += 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            else:
                continue
            if count > max_nodes:
                raise _too_many(limits, event.start_mark)
    finally:
        loader.dispose()


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

    def __init__(self, file: str, limits: Limits = LIMITS) -> None:
        self.file = file
        self.limits = limits
        self.locs: dict[Path, Loc] = {}
        self.key_locs: dict[Path, Loc] = {}
        self.diags: list[Diagnostic] = []
        self._scalars = SafeConstructor()

    def build(self, node: Node, path: Path, active: tuple[int, ...] = ()) -> Any:
        self.locs[path] = _mark_loc(self.file, node.start_mark)
        if id(node) in active:
            self.diags.append(Diagnostic(
                "yaml-syntax", "recursive YAML alias", self.locs[path],
                "a YAML alias must not refer to a node that contains it"))
            return None
        if len(active) >= self.limits.max_depth:  # aliases can stack nesting up
            raise _too_deep(self.limits, node.start_mark)
        active = (*active, id(node))
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if node.tag not in _COLLECTION_TAGS:  # e.g. !!python/object/apply: never built
            self.diags.append(Diagnostic(
                "yaml-syntax", f"cannot read YAML value: unsupported tag {node.tag!r}",
                self.locs[path], "remove the tag (only plain YAML values are supported)"))
            return None
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
        except (ValueError, OverflowError) as exc:  # e.g. an integer of 5,000 digits
            self.diags.append(Diagnostic(
                "yaml-syntax", f"cannot read YAML value: {exc}",
                _mark_loc(self.file, node.start_mark),
                "quote the value to keep it a string"))
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


def _compose(text: str, limits: Limits = LIMITS) -> yaml.Node | None:
    try:
        if len(text) > _SMALL or "&" in text:
            _check_events(text, limits, _LOADER)
        return yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError:
        if _LOADER is yaml.SafeLoader:
            raise
        # the pure-Python parser words its errors better ("found character '\\t'");
        # its composer recurses too, so the limits are checked first
        _check_events(text, limits, yaml.SafeLoader)
        return yaml.compose(text, Loader=yaml.SafeLoader)


def _position(text: str, offset: int, file: str) -> Loc:
    line = text.count("\n", 0, offset)
    return Loc(file, line + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1)


def _too_large(text: str, file: str, limits: Limits) -> DiagnosticError:
    return error(
        "input-too-large",
        f"the input is larger than {limits.max_bytes:,} bytes; cloudtmpl reads no further",
        _position(text, min(len(text), limits.max_bytes), file),
        budget.too_large_hint(limits.max_bytes))


def load_text(text: str, file: str = "<string>", limits: Limits = LIMITS) -> Document:
    """Parse YAML ``text`` whose top level must be a mapping (within ``limits``)."""
    if len(text) > limits.max_bytes:
        raise _too_large(text, file, limits)
    try:
        node = _compose(text, limits)
    except _LimitExceeded as exc:
        raise error(exc.code, exc.message, _mark_loc(file, exc.mark), exc.hint) from None
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
    builder = _Builder(file, limits)
    try:
        data = builder.build(node, ())
    except _LimitExceeded as exc:
        raise error(exc.code, exc.message, _mark_loc(file, exc.mark), exc.hint) from None
    if builder.diags:
        raise DiagnosticError(builder.diags)
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__} value"
        raise error("not-a-mapping", f"the top level is {kind}, not a mapping",
                    builder.locs.get((), Loc(file, 1, 1)),
                    "a template or environment is a YAML mapping of sections "
                    "(e.g. 'heat_template_version:', 'resources:')")
    return Document(file, text, data, builder.locs, builder.key_locs)


def load_file(path: str, limits: Limits = LIMITS) -> Document:
    """Read and parse a YAML file; an unreadable file is a ``file-not-found`` diagnostic.

    Only a regular file is read (a FIFO or ``/dev/zero`` is ``not-a-regular-file``),
    and at most ``limits.max_bytes`` bytes (+1 to notice more): a huge file is
    refused with bounded memory.
    """
    try:
        raw = budget.read_prefix(path, limits.max_bytes)
    except budget.FileRefused as exc:
        raise exc.diagnostic(Loc(path), f"cannot read {path}") from None
    except FileNotFoundError:
        raise error("file-not-found", f"no such file: {path}", Loc(path),
                    "check the path (it is relative to the current directory)") from None
    except IsADirectoryError:
        raise error("file-not-found", f"{path} is a directory, not a file", Loc(path),
                    "pass the template file itself") from None
    except OSError as exc:
        raise error("file-not-found", f"cannot read {path}: {exc.strerror}", Loc(path),
                    "check the file's permissions") from None
    if len(raw) > limits.max_bytes:
        raise _too_large(raw.decode("utf-8", errors="replace"), path, limits)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error("file-not-found", f"cannot read {path}: not UTF-8 text ({exc.reason})",
                    Loc(path), "save the file as UTF-8") from None
    return load_text(text, path, limits)
