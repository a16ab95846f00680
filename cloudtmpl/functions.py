"""HOT intrinsic functions, one small class each (Heat style), per HOT version.

A template value is parsed into a *tree*: plain data (dict, list, scalars) in
which every function call is replaced by an immutable :class:`Function` node.
A one-key mapping whose key is a function of the template's HOT version is a
call; any other mapping is data (unknown names are never guessed, so
``{get_params: x}`` stays a mapping).  A key that names a Heat function the
declared version does not have (``map_merge`` in a ``2015-10-15`` template) is
reported as ``function-not-available`` with the version that introduced it.

Each function class

* ``parse(args, path, p)`` checks the *shape* of its arguments and raises
  :class:`~cloudtmpl.diagnostics.DiagnosticError` (code ``function-args``, with
  the location and a hint showing the correct form);
* ``dependencies()`` names the resources it references;
* ``result(ctx)`` computes its value against a :class:`Context`.

Values that are known only after apply are :data:`cloudtmpl.model.UNKNOWN`; a
function whose needed inputs are unknown returns UNKNOWN, except where the
answer is decidable anyway (``and`` with a false operand, ``if`` whose condition
is known, ...).  :func:`partial_evaluate` evaluates everything that does not
depend on resources and leaves resource-dependent nodes in place.

Which functions a HOT version has is the table :data:`FUNCTIONS` (built from
:data:`_ADDED`, as in Heat's ``heat/engine/hot/template.py`` and the HOT
specification); where a function's behaviour changed between versions (``str_replace``
serialising maps as JSON from 2015-10-15, ``repeat`` over maps from 2016-10-14,
...) the table maps the name to a small subclass, as Heat does.

Conditions are parsed in *condition scope*: only Heat's condition functions
(``equals``, ``get_param``, ``not``, ``and``, ``or``; ``contains`` from
2017-09-01) are calls there, and a value function is ``invalid-condition``.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol, runtime_checkable
from urllib import parse as urlparse

from cloudtmpl import limits
from cloudtmpl.diagnostics import NOWHERE, Diagnostic, DiagnosticError, Loc
from cloudtmpl.loader import Document, Path
from cloudtmpl.model import UNKNOWN, is_unknown
from cloudtmpl.schema import (
    HOT_DATES,
    LATEST_HOT_VERSION,
    canonical_version,
    describe,
    version_label,
)
from cloudtmpl.sensitive import has_marks, is_marked, mark, touched, touches


class Context(Protocol):
    """What functions can ask about the stack being evaluated.

    Any method may return :data:`~cloudtmpl.model.UNKNOWN`.
    """

    def param(self, name: str) -> Any: ...

    def condition(self, name: str) -> Any: ...

    def resource_ref(self, name: str) -> Any: ...

    def resource_attr(self, name: str, attr: str, path: tuple[Any, ...]) -> Any: ...


@runtime_checkable
class AttrPaths(Protocol):
    """A context that answers a ``get_attr`` path knowing where it is written, to warn
    about a key or index the attribute's value does not have (plan and apply do)."""

    def resource_attr_at(self, name: str, attr: str, path: tuple[Any, ...],
                         loc: Loc) -> Any: ...

    def resource_attrs(self, name: str) -> Any:
        """``{get_attr: [name]}``: the map of the resource's attributes."""


@runtime_checkable
class FileSource(Protocol):
    """A context that can answer ``get_file`` (resolve's context does)."""

    def get_file(self, path: str, loc: Loc) -> Any: ...


class _Omit:
    """What a two-argument ``if`` whose condition is false evaluates to."""

    _instance: _Omit | None = None

    def __new__(cls) -> _Omit:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "(omitted)"


#: The enclosing list item, mapping entry or property is left out (HOT 2021-04-16).
OMIT: Any = _Omit()


# --------------------------------------------------------------------------- text


_PLAIN = re.compile(r"^[A-Za-z0-9_./@$-][A-Za-z0-9_./@$ -]*$")


def to_text(value: Any) -> str:
    """A compact flow-YAML rendering of a tree, e.g. ``{get_attr: [web, first_address]}``."""
    if isinstance(value, Function):
        return value.to_text()
    if value is UNKNOWN:
        return "(known after apply)"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{to_text(k)}: {to_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(to_text(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if _PLAIN.match(value) and not value.endswith(" ") and value.lower() not in (
                "true", "false", "null", "yes", "no", "on", "off"):
            try:
                float(value)
            except ValueError:
                return value
        return json.dumps(value)
    return repr(value)


# --------------------------------------------------------------------------- parsing


def _fail(code: str, message: str, loc: Loc, hint: str = "") -> DiagnosticError:
    return DiagnosticError([Diagnostic(code, message, loc, hint)])


@dataclass(frozen=True)
class Parser:
    """How to parse a tree: the source document, the HOT version and the scope."""

    doc: Document | None = None
    version: str = LATEST_HOT_VERSION
    condition: bool = False  # parsing a condition (only condition functions are calls)

    def key_loc(self, path: Path) -> Loc:
        return self.doc.key_loc(path) if self.doc is not None else NOWHERE

    def since(self, version: str) -> bool:
        return self.version >= version

    def for_condition(self) -> Parser:
        return replace(self, condition=True)


def _not_available(name: str, since: str, loc: Loc, what: str = "") -> Diagnostic:
    label = version_label(since)
    return Diagnostic(
        "function-not-available",
        f"{what or repr(name)} is not available in this heat_template_version",
        loc, f"{name} was introduced in HOT {label}; declare heat_template_version: "
        f"{since} (or later, e.g. {LATEST_HOT_VERSION})")


@dataclass(frozen=True)
class Function:
    """An intrinsic function call in a value tree (immutable, hashable).

    ``args`` holds the parsed arguments in a class-specific order; nested
    values are themselves trees.  ``loc`` points at the function's key and is
    not part of equality.
    """

    name: ClassVar[str] = ""
    usage: ClassVar[str] = ""

    args: tuple[Any, ...]
    loc: Loc = field(default=NOWHERE, compare=False)

    def __hash__(self) -> int:
        return hash((self.name, self.to_text()))

    def __repr__(self) -> str:
        return self.to_text()

    __str__ = __repr__

    # -- parsing helpers
    @classmethod
    def parse(cls, args: Any, path: Path, p: Parser) -> Function:
        raise NotImplementedError

    @classmethod
    def _bad(cls, problem: str, path: Path, p: Parser) -> DiagnosticError:
        return _fail("function-args", f"{cls.name}: {problem}", p.key_loc(path),
                     f"write it as {cls.usage}")

    @classmethod
    def _subtrees(cls, values: list[tuple[Any, Path]], p: Parser) -> list[Any]:
        """Parse nested argument values, raising all their diagnostics at once."""
        diags: list[Diagnostic] = []
        out = [_parse(v, path, p, diags) for v, path in values]
        if diags:
            raise DiagnosticError(diags)
        return out

    @classmethod
    def _items(cls, args: Any, path: Path, p: Parser, lo: int, hi: int | None,
               expect: str) -> list[Any]:
        """Parsed items of a list argument with ``lo``..``hi`` entries."""
        if not isinstance(args, list) or len(args) < lo or (hi is not None and len(args) > hi):
            raise cls._bad(f"expected {expect}", path, p)
        return cls._subtrees([(a, (*path, i)) for i, a in enumerate(args)], p)

    @classmethod
    def _list_or_call(cls, args: Any, path: Path, p: Parser, expect: str) -> tuple[Any, ...]:
        """A list argument (parsed items) or one function call producing the list."""
        if isinstance(args, list):
            return tuple(cls._subtrees([(a, (*path, i)) for i, a in enumerate(args)], p))
        (tree,) = cls._subtrees([(args, path)], p)
        if isinstance(tree, Function):
            return (tree,)
        raise cls._bad(f"expected {expect}", path, p)

    # -- behaviour
    def dependencies(self) -> set[str]:
        out: set[str] = set()
        for arg in self.args:
            out |= dependencies(arg)
        return out

    def result(self, ctx: Context) -> Any:
        raise NotImplementedError

    def partial(self, ctx: Context) -> Any:
        """Evaluate what does not depend on resources; keep this node otherwise."""
        return self.with_args(tuple(partial_evaluate(a, ctx) for a in self.args))

    def with_args(self, args: tuple[Any, ...]) -> Function:
        return replace(self, args=args)

    def value(self, tree: Any, ctx: Context) -> Any:
        """An argument's value (an omitted ``if`` counts as null, as in Heat)."""
        out = evaluate(tree, ctx)
        return None if out is OMIT else out

    def raw(self) -> Any:
        """The arguments as they would be written in a template."""
        return list(self.args)

    def to_text(self) -> str:
        return "{" + self.name + ": " + to_text(self.raw()) + "}"

    def error(self, message: str, hint: str = "") -> DiagnosticError:
        return _fail("function-error", f"{self.name}: {message}", self.loc, hint)

    def expect_type(self, value: Any, types: type | tuple[type, ...], what: str) -> None:
        if not isinstance(value, types):
            raise self.error(f"{what}, not {describe(value)}")

    # -- the value limits (cloudtmpl.limits): checked before a large value is built
    def within(self, size: int, what: str = "the result") -> None:
        """Refuse (``limit-exceeded``, here) a value of ``size`` bytes being built."""
        limits.within(size, self.loc, f"{self.name}: {what}")

    def bounded(self, value: Any) -> Any:
        """``value``, this function's result, once it is within the limits and counted in
        the run's totals."""
        return limits.check_value(value, self.loc, f"{self.name}: the result")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _all_known(*values: Any) -> bool:
    return not any(is_unknown(v) for v in values)


# --------------------------------------------------------------------------- references


class GetParam(Function):
    """``{get_param: name}`` or ``{get_param: [name, key_or_index, ...]}``."""

    name = "get_param"
    usage = "{get_param: name} or {get_param: [name, key_or_index, ...]}"

    @property
    def param_name(self) -> str:
        return str(self.args[0])

    @classmethod
    def parse(cls, args: Any, path: Path, p: Parser) -> Function:
        if isinstance(args, str):
            return cls((args,), p.key_loc(path))
        if not isinstance(args, list) or not args:
            raise cls._bad("expected a parameter name or a non-empty list", path, p)
        if not isinstance(args[0], str):
            raise cls._bad("the first argument must be a parameter name", path, p)
        rest = cls._subtrees([(a, (*path, i)) for i, a in enumerate(args[1:], 1)], p)
        return cls((args[0], *rest), p.key_loc(path))

    def result(self, ctx: Context) -> Any:
        value = ctx.param(self.param_name)
        for key_tree in self.args[1:]:
            key = self.value(key_tree, ctx)
            if value is UNKNOWN or is_unknown(key):
                return UNKNOWN
            value = _index(self, value, key)
        return value

    def raw(self) -> Any:
        return self.args[0] if len(self.args) == 1 else list(self.args)


def _index(fn: Function, value: Any, key: Any) -> Any:
    if isinstance(value, Mapping):
        if key in value:
            return value[key]
        if str(key) in value:
            return value[str(key)]
        raise fn.error(f"key '{key}' not found", "available keys: "
                       + ", ".join(str(k) for k in value))
    if isinstance(value, list):
        try:
            return value[int(key)]
        except (ValueError, TypeError, IndexError):
            raise fn.error(f"index '{key}' is not valid for a list of {len(value)}",
                           "use a 0-based integer index") from None
    raise fn.error(f"cannot look up '{key}' in {describe(value)}")


class GetResource(Function):
    """``{get_resource: name}``: the resource's reference (usually its id)."""

    name = "get_resource"
    usage = "{get_resource: resource_name}"

    @property
    def resource(self) -> str:
        return str(self.args[0])

    @classmethod
    def parse(cls, args: Any, path: Path, p: Parser) -> Function:
        if not isinstance(args, str) or not args:
            raise cls._bad("expected a resource name", path, p)
        return cls((args,), p.key_loc(path))

    def dependencies(self) -> set[str]:
        return {self.resource}

    def result(self, ctx: Context) -> Any:
        return ctx.resource_ref(self.resource)

    def raw(self) -> Any:
        return self.args[0]


class GetAttr(Function):
    """``{get_attr: [resource, attribute, key_or_index, ...]}``."""

    name = "get_attr"
    usage = "{get_attr: [resource_name, attribute_name, optional_key_or_index, ...]}"
    _min_args: ClassVar[int] = 2

    @property
    def resource(self) -> str:
        return str(self.args[0])

    @property
    def attribute(self) -> str | None:
        """The attribute name; None for the all-attributes form ``[resource]``."""
        return str(self.args[1]) if len(self.args) > 1 else None

    @property
    def path(self) -> tuple[Any, ...]:
        return self.args[2:]

    @classmethod
    def parse(cls, args: Any, path: Path, p: Parser) -> Function:
        if not isinstance(args, list) or len(args) < cls._min_args:
            raise cls._bad("expected a list of at least a resource name and an attribute",
                           path, p)
        if not all(isinstance(a, str) for a in args[:2]):
            raise cls._bad("the resource and attribute names must be strings", path, p)
        rest = cls._subtrees([(a, (*path, i)) for i, a in enumerate(args[2:], 2)], p)
        return cls((*args[:2], *rest), p.key_loc(path))

    def with_attribute(self, attribute: str) -> GetAttr:
        return replace(self, args=(self.args[0], attribute, *self.args[2:]))

    def dependencies(self) -> set[str]:
        out = {self.resource}
        for arg in self.path:
            out |= dependencies(arg)
        return out

    def result(self, ctx: Context) -> Any:
        path = tuple(self.value(a, ctx) for a in self.path)
        if self.attribute is None and isinstance(ctx, AttrPaths):
            return ctx.resource_attrs(self.resource)
        if self.attribute is None or is_unknown(path):
            return UNKNOWN
        if isinstance(ctx, AttrPaths):
            return ctx.resource_attr_at(self.resource, self.attribute, path, self.loc)
        return ctx.resource_attr(self.resource, self.attribute, path)


class GetAttrAll(GetAttr):
    """From HOT 2015-10-15, ``{get_attr: [resource]}`` is a map of all attributes."""

    usage = "{get_attr: [resource_name, attribute_name, optional_key_or_index, ...]} " \
            "or {get_attr: [resource_name]}"
    _min_args = 1


class GetFile(Function):
    """``{get_file: relative/path}``: the file's text (read through resolve's reader)."""

    name = "get_file"
    usage = "{get_file: path/relative/to/the/template}"

    @property
    def path(self) -> str:
        return str(self.args[0])

    @classmethod
    def parse(cls, args: Any, path: Path, p: Parser) -> Function:
        if not isinstance(args, str) or not args:
            raise cls._bad("expected a literal file path (get_file cannot use other "
                           "functions)", path, p)
        return cls((args,), p.key_loc(path))

    def result(self, ctx: Context) -> Any:
        if isinstance(ctx, FileSource):
            text = ctx.get_file(self.path, self.loc)
            return text if is_unknown(text) else self.bounded(text)
        raise self.error("files can only be read while resolving the template")

    def raw(self) -> Any:
        return self.args[0]


# --------------------------------------------------------------------------- strings


class StrReplace(Function):
    """``{str_replace: {template: ..., params: {placeholder: value, ...}}}``.

    As in Heat, placeholders are replaced longest first (ties: alphabetical) by
    splitting the text, so a replacement is never replaced again.  Before HOT
    2015-10-15 the values must be strings or numbers.
    """

    name = "str_replace"
    usage = "{str_replace: {template: 'text with $var', params: {$var: value}}}"
    _json: ClassVar[bool] = False  # maps and lists become JSON (2015-10-15)
    _strict: ClassVar[bool] = False  # every placeholder must occur (str_replace_strict)
    _non_empty: ClassVar[bool] = False  # no empty values (str_replace_vstrict)

    @classmethod
    def parse(cls, args: Any, path: Path, p: Parser) -> Function:
        if not isinstance(args, Mapping):
            raise cls._bad("expected a mapping with 'template' and 'params'", path, p)
        missing = [k for k in ("template", "params") if k not in args]
        extra = [str(k) for k in args if k not in ("template", "params")]
        if missing or extra:
            problem = (f"missing {', '.join(repr(k) for k in missing)}" if missing
                       else f"unexpected key(s) {', '.join(repr(k) for k in extra)}")
            raise cls._bad(problem, path, p)
        template, params = cls._subtrees(
            [(args["template"], (*path, "template")), (args["params"], (*path, "params"))], p)
        if not isinstance(template, (str, Function)):
            raise cls._bad("'template' must be a string", (*path, "template"), p)
        if not isinstance(params, (Mapping, Function)):
            raise cls._bad("'params' must be a mapping", (*path, "params"), p)
        return cls((template, params), p.key_loc(path))

    def raw(self) -> Any:
        return {"template": self.args[0], "params": self.args[1]}

    def result(self, ctx: Context) -> Any:
        template, params = self.value(self.args[0], ctx), self.value(self.args[1], ctx)
        if not _all_known(template, params):
            return UNKNOWN
        self.expect_type(template, str, "'template' must be a string")
        self.expect_type(params, Mapping, "'params' must be a mapping")
        self.within(len(template), "'template'")
        mapping: dict[str, str] = {}
        for key, value in params.items():
            if not isinstance(key, str) or not key:
                raise self.error(f"placeholder {to_text(key)} must be a non-empty string")
            mapping[key] = self.replacement(key, value)
            self.within(len(mapping[key]), f"the value of '{key}'")
        keys = sorted(sorted(mapping), key=len, reverse=True)
        found: set[str] = set()
        text = self.bounded(_replace_all(self, template, keys, mapping, found))
        missing = [k for k in keys if k not in found]
        if self._strict and missing:
            raise self.error("the following params were not found in the template: "
                             + ",".join(missing), "remove them or fix their spelling")
        return text

    def replacement(self, key: str, value: Any) -> str:
        if value is None or (isinstance(value, (str, list, Mapping)) and not value):
            if self._non_empty:
                raise self.error(f"param '{key}' has an undefined or empty value",
                                 "every param of str_replace_vstrict must be non-empty")
            return "" if value is None or isinstance(value, str) else _json(value)
        if isinstance(value, (str, int, float)):
            return str(value)
        if self._json and isinstance(value, (list, Mapping)):
            return _json(value)
        allowed = "strings, numbers, lists or maps" if self._json else "strings or numbers"
        raise self.error(f"param '{key}' must be one of {allowed}, not {describe(value)}")


def _replace_all(fn: Function, template: str, keys: list[str], mapping: Mapping[str, str],
                 found: set[str]) -> str:
    """Heat's replacement: split the text on the first key, replace the other keys inside
    the pieces, join them with the key's value (which is never replaced again).

    Done key by key over a list that alternates text still to replace (even
    positions) and values put in (odd positions); the length of the result is
    known before it is joined, and checked against the value limit.
    """
    parts = [template]
    length = len(template)
    for key in keys:
        value = mapping[key]
        out: list[str] = []
        for i, part in enumerate(parts):
            if i % 2:
                out.append(part)
                continue
            pieces = part.split(key)
            out.append(pieces[0])
            for piece in pieces[1:]:
                out += (value, piece)
            length += (len(pieces) - 1) * (len(value) - len(key))
        if len(out) > len(parts):
            found.add(key)
            fn.within(length + 2)
        parts = out
    return "".join(parts)


class StrReplaceJson(StrReplace):
    """``str_replace`` from HOT 2015-10-15: list and map values become JSON."""

    _json = True


class StrReplaceStrict(StrReplaceJson):
    """``str_replace_strict``: an error when a placeholder is not in the template."""

    name = "str_replace_strict"
    usage = "{str_replace_strict: {template: 'text with $var', params: {$var: value}}}"
    _strict = True


class StrReplaceVStrict(StrReplaceStrict):
    """``str_replace_vstrict``: also an error when a value is null or empty."""

    name = "str_replace_vstrict"
    usage = "{str_replace_vstrict: {template: 'text with $var', params: {$var: value}}}"
    _non_empty = True


class ListJoin(Function):
    """``{list_join: [delimiter, [item, ...]]}`` (before HOT 2015-10-15: one list of strings)."""

    name = "list_join"
    usage = "{list_join: [delimiter, [item, ...]]}"
    _max_lists: ClassVar[int | None] = 1

    @classmethod
    def parse(cls, args: Any, path: Path, p: Parser) -> Function:
        hi = None if cls._max_lists is None else cls._max_lists + 1
        parsed = cls._items(args, path, p, 2, hi, "a delimiter and "
                            + ("one list" if cls._max_lists == 1 else "at least one list"))
        if not isinstance(parsed[0], (str, Function)):
            raise cls._bad("the delimiter must be a string", (*path, 0), p)
        for i, item in enumerate(parsed[1:], 1):
            if not isinstance(item, (list, Function)) and item is not None:
                raise cls._bad(f"argument {i + 1} must be a list", (*path, i), p)
        return cls(tuple(parsed), p.key_loc(path))

    def result(self, ctx: Context) -> Any:
        delim = self.value(self.args[0], ctx)
        lists = [self.value(a, ctx) for a in self.args[1:]]
        if not _all_known(delim, lists):
            return UNKNOWN
        self.expect_type(delim, str, "the delimiter must be a string")
        items: list[str] = []
        length = 2 - len(delim)
        for value in lists:
            if not value:
                continue
            self.expect_type(value, list, "expected a list to join")
            for v in value:
                items.append(self.item(v))
                length += len(items[-1]) + len(delim)
                self.within(length)
        return self.bounded(delim.join(items))

    def item(self, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        raise self.error(f"items to join must be strings, not {describe(value)}")


class ListJoinMulti(ListJoin):
    """``list_join`` from HOT 2015-10-15: several lists; maps and lists joined as JSON."""

    usage = "{list_join: [delimiter, [item, ...], ...]}"
    _max_lists = None

    def item(self, value: Any) -> str:
        if isinstance(value, (list, Mapping)):
            self.within(limits.measure(value, limits.current_limits().value_bytes)[0], "an item")
            return _json(value)
        if value is None or isinstance(value, str):
            return super().item(value)
        raise self.error(f"items to join must be strings, maps or lists, not {describe(value)}")


class StrSplit(Function):
    """``{str_split: [delimiter, string]}`` or ``[delimiter, string, index]``."""

    name = "str_split"
    usage = "{str_split: [delimiter, string]} or {str_split: [delimiter, string, index]}"

    @classmethod
    def parse(cls, args: Any, path: Path, p: Parser) -> Function:
        return cls(tuple(cls._items(args, path, p, 2, 3, "a delimiter, a string and "
                                    "an optional index")), p.key_loc(path))

    def result(self, ctx: Context) -> Any:
        values = [self.value(a, ctx) for a in self.args]
        if not _all_known(values):
            return UNKNOWN
        delim, text = values[0], values[1]
        if text is None:
            return None
        self.expect_type(delim, str, "the delimiter must be a string")
        self.expect_type(text, str, "the value to split must be a string")
        if not delim:
            raise self.error("the delimiter must not be empty")
        if len(values) == 2:  # each piece as JSON: its text, quotes and a comma
            size = len(text) + text.count(delim) * (3 - len(delim)) + 2
            self.within(size)
            return self.bounded(text.split(delim))
        parts = text.split(delim)
        try:
            return parts[int(values[2])]
        except (TypeError, ValueError):
            raise self.error(f"the index {to_text(values[2])} is not an integer") from None
        except IndexError:
            raise self.error(f"the index {values[2]} is out of range: the list has "
                             f"{len(parts)} items", f"use an index from 0 to "
                             f"{len(parts) - 1}") from None


class Digest(Function):
    """``{digest: [algorithm, value]}``: the hex digest of a string."""

    name = "digest"
    usage = "{digest: [algorithm, value]}"
    ALGORITHMS: ClassVar[tuple[str, ...]] = (
        "md5", "sha1", "sha224", "sha256", "sha384", "sha512",
        "sha3_224", "sha3_256", "sha3_384", "sha3_512", "blake2b", "blake2s")

    @classmethod
    def parse(cls, args: Any, path: Path, p: Parser) -> Function:
        parsed = cls._items(args, path, p, 2, 2, "an algorithm and a value")
        if isinstance(parsed[0], str) and parsed[0].lower() not in cls.ALGORITHMS:
            raise cls._bad(f"unknown algorithm '{parsed[0]}' (known: "
                           f"{', '.join(cls.ALGORITHMS)})", (*path, 0), p)
        return cls(tuple(parsed), p.key_loc(path))

    def result(self, ctx: Context) -> Any:
        algorithm, text = (self.value(a, ctx) for a in self.args)
        if not _all_known(algorithm, text):
            return UNKNOWN
        self.expect_type(algorithm, str, "the algorithm must be a string")
        self.expect_type(text, str, "the value to digest must be a string")
        if algorithm.lower() not in self.ALGORITHMS:
            raise self.error(f"unknown algorithm '{algorithm}'",
                             "use one of " + ", ".join(self.ALGORITHMS))
        return hashlib.new(algorithm.lower(), text.encode()).hexdigest()


# --------------------------------------------------------------------------- lists and maps


class Repeat(Function):
    """``{repeat: {for_each: {placeholder: list, ...}, template: ...}}``.

    One copy of the template per combination of the lists' items (all
    permutations), with each placeholder replaced in strings and map keys.
    """

    name = "repeat"
    usage = "{repeat: {for_each: {<%var%>: [a, b]}, template: 'text with <%var%>'}}"
    _maps: ClassVar[bool] = False  # for_each values may be maps (their keys), 2016-10-14
    _permutations: ClassVar[bool] = False  # the 'permutations' flag, 2017-09-01

    @classmethod
    def parse(cls, args: Any, path: Path, p: Parser) -> Function:
        if not isinstance(args, Mapping) or "for_each" not in args or "template" not in args:
            raise cls._bad("expected a mapping with 'for_each' and 'template'", path, p)
        allowed = ("for_each", "template", "permutations")
        extra = [str(k) for k in args if k not in allowed]
        if extra:
            raise cls._bad(f"unexpected key(s) {', '.join(repr(k) for k in extra)}", path, p)
        permutations = args.get("permutations", True)
        if "permutations" in args and not cls._permutations:
            raise DiagnosticError([_not_available(
                "repeat's 'permutations'", "2017-09-01", p.key_loc((*path, "permutations")))])
        if not isinstance(permutations, bool):
            raise cls._bad("'permutations' must be true or false", (*path, "permutations"), p)
        for_each, template = cls._subtrees(
            [(args["for_each"], (*path, "for_each")), (args["template"], (*path, "template"))],
            p)
        if not isinstance(for_each, (Mapping, Function)) or (
                isinstance(for_each, Mapping) and not for_each):
            raise cls._bad("'for_each' must be a mapping of placeholder to list",
                           (*path, "for_each"), p)
        return cls((for_each, template, permutations), p.key_loc(path))

    def raw(self) -> Any:
        out = {"for_each": self.args[0], "template": self.args[1]}
        if self.args[2] is False:
            out["permutations"] = False
        return out

    def result(self, ctx: Context) -> Any:
        for_each = self.value(self.args[0], ctx)
        if is_unknown(for_each):
            return UNKNOWN
        self.expect_type(for_each, Mapping, "'for_each' must be a mapping")
        keys = list(for_each)
        if not all(isinstance(k, str) for k in keys):
            raise self.error("the placeholders in 'for_each' must be strings")
        lists = [self.items(k, v) for k, v in for_each.items()]
        template = self.value(self.args[1], ctx)
        if self.args[2]:
            combos: Any = itertools.product(*lists)
            count = math.prod(len(v) for v in lists)
        else:
            if len({len(v) for v in lists if v}) > 1:
                raise self.error("with 'permutations: false' the lists must have the "
                                 "same length")
            combos = zip(*lists, strict=False)
            count = min(len(v) for v in lists)
        used = [2 + count]  # the result's size as JSON so far (brackets, commas)
        self.within(used[0] + 2 * count)  # each copy is at least 2 bytes ("" or [])
        out = [self.substitute(template, dict(zip(keys, combo, strict=True)), used)
               for combo in combos]
        return self.bounded(out)

    def items(self, key: str, value: Any) -> list[Any]:
        if value is None:
            return []
        if isinstance(value, Mapping) and self._maps and self.args[2]:
            return list(value)
        if not isinstance(value, list):
            kinds = "lists or maps" if self._maps and self.args[2] else "lists"
            raise self.error(f"the value of '{key}' in 'for_each' must be {kinds}, "
                             f"not {describe(value)}")
        return value

    def substitute(self, template: Any, values: Mapping[str, Any], used: list[int]) -> Any:
        """One copy of the template; ``used[0]`` counts the size of all copies so far
        (each string's size is known before it is made, and checked)."""
        if isinstance(template, str):
            for key, value in values.items():
                if key in template:
                    if not isinstance(value, str):
                        raise self.error(f"cannot put {describe(value)} for '{key}' into a "
                                         "string", "the for_each lists must hold strings")
                    self.within(used[0] + len(template)
                                + template.count(key) * (len(value) - len(key)))
                    template = template.replace(key, value)
            used[0] += len(template) + 2
        elif isinstance(template, list):
            used[0] += 2 + len(template)
            template = [self.substitute(v, values, used) for v in template]
        elif isinstance(template, Mapping):
            used[0] += 2 + 2 * len(template)
            template = {self.substitute(k, values, used): self.substitute(v, values, used)
                        for k, v in template.items()}
        else:
            used[0] += 8
        self.within(used[0])
        return template


class RepeatWithMap(Repeat):
    """``repeat`` from HOT 2016-10-14: a map in ``for_each`` iterates over its keys."""

    _maps = True


class RepeatWithPermutations(RepeatWithMap):
    """``repeat`` from HOT 2017-09-01: ``permutations: false`` zips equal-length lists."""

    usage = ("{repeat: {for_each: {<%var%>: [a, b]}, template: 'text with <%var%>', "
             "permutations: true}}")
    _permutations = True


class _Sequence(Function):
    """A function over a list of values (or one call producing that list)."""

    expect: ClassVar[str] = "a list"

    @classmethod
    def parse(cls, args: Any, path: Path, p: Parser) -> Function:
        return cls(cls._list_or_call(args, path, p, cls.expect), p.key_loc(path))

    def operands(self, ctx: Context) -> Any:
        """The evaluated list of operands, or UNKNOWN."""
        if len(self.args) == 1 and isinstance(self.args[0], Function):
            values = self.value(self.args[0], ctx)
            if is_unknown(values):
                return UNKNOWN
            self.expect_type(values, list, f"expected {self.expect}")
            return values
        values = [self.value(a, ctx) for a in self.args]
        return UNKNOWN if is_unknown(values) else values


class MapMerge(_Sequence):
    """``{map_merge: [map, map, ...]}``: later maps override earlier ones."""

    name = "map_merge"
    usage = "{map_merge: [{k1: v1}, {k1: v2, k2: v3}, ...]}"
    expect = "a list of maps"

    def result(self, ctx: Context) -> Any:
        maps = self.operands(ctx)
        if maps is UNKNOWN:
            return UNKNOWN
        out: dict[Any, Any] = {}
        for m in maps:
            if m is not None:
                self.expect_type(m, Mapping, "items to merge must be maps")
                out.update(m)
        return self.bounded(out)


class ListConcat(_Sequence):
    """``{list_concat: [list, list, ...]}``; null items are ignored."""

    name = "list_concat"
    usage = "{list_concat: [[a, b], [c], ...]}"
    expect = "a list of lists"

    def result(self, ctx: Context) -> Any:
        lists = self.operands(ctx)
        if lists is UNKNOWN:
            return UNKNOWN
        out: list[Any] = []
        for item in lists:
            if item is not None:
                self.expect_type(item, list, "items to concatenate must be lists")
                self.within(2 + 3 * (len(out) + len(item)))  # each item: 2 bytes and a comma
                out.extend(item)
        return self.bounded(self.finish(out))

    def finish(self, items: list[Any]) -> list[Any]:
        return items


class ListConcatUnique(ListConcat):
    """``list_concat_unique``: as ``list_concat``, keeping the last of repeated items."""

    name = "list_concat_unique"
    usage = "{list_concat_unique: [[a, b], [b, c], ...]}"

    def finish(self, items: list[Any]) -> list[Any]:
        return _heat_unique(items)


def _heat_unique(items: list[Any]) -> list[Any]:
    """Heat's list_concat_unique, exactly, in O(n log n) rather than O(n^2).

    Heat walks the list forward while deleting from it (``for i in items: while
    items.count(i) > 1: del items[items.index(i)]``), so an item that moves into the
    place of a deleted one is skipped (and may keep a duplicate).  This replays that
    walk: the living items in a Fenwick tree (the walk's i-th item in O(log n)),
    each value's living positions in a queue (``index`` is its head).
    """
    keys = [_frozen(item) for item in items]
    where: dict[Any, collections.deque[int]] = {}
    for pos, key in enumerate(keys):
        where.setdefault(key, collections.deque()).append(pos)
    if len(where) == len(items):
        return items  # no duplicates: nothing is deleted
    n = len(items)
    tree = [0] * (n + 1)  # Fenwick tree of 1 per living position
    for pos in range(1, n + 1):
        tree[pos] += 1
        up = pos + (pos & -pos)
        if up <= n:
            tree[up] += tree[pos]
    alive = [True] * n
    step = 1 << n.bit_length()
    walk, count = 0, n
    while walk < count:
        pos, left, bit = 0, walk, step  # the living position with `walk` living before it
        while bit:
            if pos + bit <= n and tree[pos + bit] <= left:
                pos += bit
                left -= tree[pos]
            bit >>= 1
        queue = where[keys[pos]]
        while len(queue) > 1:
            dead = queue.popleft()
            alive[dead] = False
            count -= 1
            up = dead + 1
            while up <= n:
                tree[up] -= 1
                up += up & -up
        walk += 1
    return [item for item, living in zip(items, alive, strict=True) if living]


class MapReplace(Function):
    """``{map_replace: [map, {keys: {old: new}, values: {old: new}}]}``."""

    name = "map_replace"
    usage = "{map_replace: [{k1: v1}, {keys: {k1: K1}, values: {v1: V1}}]}"

    @classmethod
    def parse(cls, args: Any, path: Path, p: Parser) -> Function:
        parsed = cls._items(args, path, p, 2, 2, "a map and a mapping of 'keys' and/or "
                            "'values' replacements")
        repl = parsed[1]
        if isinstance(repl, Mapping):
            extra = [str(k) for k in repl if k not in ("keys", "values")]
            if extra:
                raise cls._bad(f"unexpected key(s) {', '.join(repr(k) for k in extra)}; "
                               "only 'keys' and 'values'", (*path, 1), p)
        elif not isinstance(repl, Function) and repl is not None:
            raise cls._bad("the second item must be a mapping", (*path, 1), p)
        return cls(tuple(parsed), p.key_loc(path))

    def result(self, ctx: Context) -> Any:
        source, repl = (self.value(a, ctx) for a in self.args)
        if not _all_known(source, repl):
            return UNKNOWN
        source, repl = source or {}, repl or {}
        self.expect_type(source, Mapping, "the first item must be a map")
        self.expect_type(repl, Mapping, "the second item must be a mapping")
        if any(k not in ("keys", "values") for k in repl):
            raise self.error("the replacements may only have 'keys' and 'values'")
        keys, values = repl.get("keys") or {}, repl.get("values") or {}
        self.expect_type(keys, Mapping, "'keys' must be a map")
        self.expect_type(values, Mapping, "'values' must be a map")
        out: dict[Any, Any] = {}
        for k, v in source.items():
            new = keys.get(k)
            if new is None:
                new = k
            elif isinstance(new, (list, dict, Mapping)):
                raise self.error(f"the replacement for key '{k}' must be a string, not a "
                                 f"{'list' if isinstance(new, list) else 'map'}")
            elif new in source and new != k:
                raise self.error(f"key replacement '{new}' collides with a key in the "
                                 "input map")
            elif new in out:
                raise self.error(f"key replacement '{new}' collides with a key in the "
                                 "output map")
            try:
                out[new] = values.get(v, v)
            except TypeError:  # an unhashable value (a list or map) is never replaced
                out[new] = v
        return out


class Filter(Function):
    """``{filter: [values_to_remove, list]}``."""

    name = "filter"
    usage = "{filter: [[values, to, remove], list]}"

    @classmethod
    def parse(cls, args: Any, path: Path, p: Parser) -> Function:
        return cls(tuple(cls._items(args, path, p, 2, 2, "a list of values and a list")),
                   p.key_loc(path))

    def result(self, ctx: Context) -> Any:
        values, sequence = (self.value(a, ctx) for a in self.args)
        if not _all_known(values, sequence):
            return UNKNOWN
        if not sequence:
            return sequence
        self.expect_type(sequence, list, "the second item must be a list")
        if not values:
            return sequence
        self.expect_type(values, list, "the values to remove must be a list")
        drop = {_frozen(v) for v in values}  # a set: linear, however long both lists are
        return [item for item in sequence if _frozen(item) not in drop]


def _frozen(value: Any) -> Any:
    """A hashable stand-in for a value, equal to another's exactly when the values are
    equal (maps as sets of frozen items, lists as tuples)."""
    if isinstance(value, Mapping):
        return frozenset((k, _frozen(v)) for k, v in value.items())
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


class Contains(Function):
    """``{contains: [value, sequence]}``: true if the value is in the sequence."""

    name = "contains"
    usage = "{contains: [value, [value1, value2, ...]]}"

    @classmethod
    def parse(cls, args: Any, path: Path, p: Parser) -> Function:
        return cls(tuple(cls._items(args, path, p, 2, 2, "a value and a sequence")),
                   p.key_loc(path))

    def result(self, ctx: Context) -> Any:
        value, sequence = (self.value(a, ctx) for a in self.args)
        if not _all_known(value, sequence):
            return UNKNOWN
        self.expect_type(sequence, (list, str), "the second item must be a sequence")
        if isinstance(sequence, str) and not isinstance(value, str):
            return False
        return value in sequence


class MakeURL(Function):
    """``{make_url: {scheme, username, password, host, port, path, query, fragment}}``."""

    name = "make_url"
    usage = ("{make_url: {scheme: https, host: example.com, port: 8080, path: /x, "
             "query: {k: v}, fragment: f}}")
    KEYS: ClassVar[tuple[str, ...]] = (
        "scheme", "username", "password", "host", "port", "path", "query", "fragment")

    @classmethod
    def parse(cls, args: Any, path: Path, p: Parser) -> Function:
        if not isinstance(args, Mapping):
            raise cls._bad("expected a mapping of URL parts", path, p)
        extra = [str(k) for k in args if k not in cls.KEYS]
        if extra:
            raise cls._bad(f"unknown key(s) {', '.join(repr(k) for k in extra)} (allowed: "
                           f"{', '.join(cls.KEYS)})", path, p)
        (parts,) = cls._subtrees([(dict(args), path)], p)
        for key, value in parts.items():
            problem = cls.problem(key, value)
            if problem:
                raise cls._bad(problem, (*path, key), p)
        return cls((parts,), p.key_loc(path))

    @classmethod
    def problem(cls, key: str, value: Any) -> str | None:
        if isinstance(value, Function) or value is UNKNOWN:
            return None
        if key == "query":
            return None if isinstance(value, Mapping) else "'query' must be a map"
        if key == "port":
            try:
                port = int(value)
            except (TypeError, ValueError):
                return f"invalid port {to_text(value)}"
            return None if 0 < port <= 65535 and not isinstance(value, (bool, float)) \
                else f"invalid port {to_text(value)}: must be an integer from 1 to 65535"
        if key == "scheme" and isinstance(value, str) and ":" in value:
            return "'scheme' must not contain ':'"
        return None if isinstance(value, str) else f"'{key}' must be a string"

    def raw(self) -> Any:
        return self.args[0]

    def result(self, ctx: Context) -> Any:
        parts = self.value(self.args[0], ctx)
        if is_unknown(parts):
            return UNKNOWN
        for key, value in parts.items():
            problem = self.problem(key, value)
            if problem:
                raise self.error(problem)
        get = parts.get
        userinfo = ""
        user, password = urlparse.quote(get("username", ""), safe=""), \
            urlparse.quote(get("password", ""), safe="")
        if user or password:
            userinfo = user + (f":{password}" if password else "") + "@"
        host = get("host", "")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        host = urlparse.quote(host, safe=":")
        if ":" in host:
            host = f"[{host}]"
        port = f":{get('port')}" if get("port") else ""
        query = urlparse.urlencode(get("query", {})).replace("%2F", "/")
        return self.bounded(urlparse.urlunsplit((get("scheme", ""), userinfo + host + port,
                                                 urlparse.quote(get("path", "")), query,
                                                 urlparse.quote(get("fragment", "")))))


# --------------------------------------------------------------------------- conditions


def _parse_condition(cls: type[Function], arg: Any, path: Path, p: Parser) -> Any:
    """A condition argument: a condition name, a boolean or a condition function."""
    if isinstance(arg, (str, bool)):
        return arg
    if isinstance(arg, Mapping):
        (tree,) = cls._subtrees([(arg, path)], p.for_condition())
        if isinstance(tree, Function):
            return tree
    raise cls._bad("a condition must be a condition name, true/false or a condition "
                   "function such as {equals: [a, b]}", path, p)


def condition_value(fn: Function, cond: Any, ctx: Context) -> Any:
    """True, False or UNKNOWN for a parsed condition argument."""
    if isinstance(cond, bool):
        return cond
    if isinstance(cond, str):
        return ctx.condition(cond)
    value = evaluate(cond, ctx)
    if value is UNKNOWN or isinstance(value, bool):
        return value
    raise fn.error(f"the condition {to_text(cond)} is not a boolean (got {to_text(value)})",
                   "use a condition function such as equals, not, and, or")


class If(Function):
    """``{if: [condition, value_if_true, value_if_false]}``."""

    name = "if"
    usage = "{if: [condition_name_or_function, value_if_true, value_if_false]}"
    _min_args: ClassVar[int] = 3

    @classmethod
    def parse(cls, args: Any, path: Path, p: Parser) -> Function:
        if not isinstance(args, list) or not cls._min_args <= len(args) <= 3:
            wanted = "exactly 3" if cls._min_args == 3 else "2 or 3"
            raise cls._bad(f"expected a list of {wanted} items", path, p)
        cond = _parse_condition(cls, args[0], (*path, 0), p)
        values = cls._subtrees([(a, (*path, i)) for i, a in enumerate(args[1:], 1)], p)
        return cls((cond, *values), p.key_loc(path))

    def dependencies(self) -> set[str]:
        return set().union(*(dependencies(a) for a in self.args[1:]))

    def branch(self, ctx: Context) -> Any:
        """The chosen branch's tree, OMIT (no false branch) or UNKNOWN."""
        cond = condition_value(self, self.args[0], ctx)
        if cond is UNKNOWN:
            return UNKNOWN
        if cond:
            return self.args[1]
        return self.args[2] if len(self.args) > 2 else OMIT

    def result(self, ctx: Context) -> Any:
        chosen = self.branch(ctx)
        return chosen if chosen is UNKNOWN or chosen is OMIT else evaluate(chosen, ctx)

    def partial(self, ctx: Context) -> Any:
        chosen = self.branch(ctx)
        if chosen is UNKNOWN:
            return super().partial(ctx)
        return chosen if chosen is OMIT else partial_evaluate(chosen, ctx)


class IfNullable(If):
    """``if`` from HOT 2021-04-16: without a false value, a false condition omits the item."""

    usage = "{if: [condition_name_or_function, value_if_true, optional_value_if_false]}"
    _min_args = 2


class Equals(Function):
    """``{equals: [a, b]}``."""

    name = "equals"
    usage = "{equals: [value1, value2]}"

    @classmethod
    def parse(cls, args: Any, path: Path, p: Parser) -> Function:
        return cls(tuple(cls._items(args, path, p, 2, 2, "a list of exactly 2 values")),
                   p.key_loc(path))

    def result(self, ctx: Context) -> Any:
        a, b = (self.value(x, ctx) for x in self.args)
        if not _all_known(a, b):
            return UNKNOWN
        return bool(a == b)


class Not(Function):
    """``{not: condition}``."""

    name = "not"
    usage = "{not: condition_name_or_function}"

    @classmethod
    def parse(cls, args: Any, path: Path, p: Parser) -> Function:
        return cls((_parse_condition(cls, args, path, p),), p.key_loc(path))

    def raw(self) -> Any:
        return self.args[0]

    def result(self, ctx: Context) -> Any:
        value = condition_value(self, self.args[0], ctx)
        return UNKNOWN if value is UNKNOWN else not value


class And(Function):
    """``{and: [condition, condition, ...]}``: false if any is false."""

    name = "and"
    usage = "{and: [condition1, condition2, ...]}"
    _short: ClassVar[bool] = False

    @classmethod
    def parse(cls, args: Any, path: Path, p: Parser) -> Function:
        if not isinstance(args, list) or len(args) < 2:
            raise cls._bad("expected a list of at least 2 conditions", path, p)
        diags: list[Diagnostic] = []
        conds = []
        for i, a in enumerate(args):
            try:
                conds.append(_parse_condition(cls, a, (*path, i), p))
            except DiagnosticError as exc:
                diags.extend(exc.diagnostics)
        if diags:
            raise DiagnosticError(diags)
        return cls(tuple(conds), p.key_loc(path))

    def result(self, ctx: Context) -> Any:
        unknown = False
        for cond in self.args:
            value = condition_value(self, cond, ctx)
            if value is UNKNOWN:
                unknown = True
            elif value is self._short:
                return self._short
        return UNKNOWN if unknown else not self._short


class Or(And):
    """``{or: [condition, condition, ...]}``: true if any is true."""

    name = "or"
    usage = "{or: [condition1, condition2, ...]}"
    _short = True


# --------------------------------------------------------------------------- unsupported


class Unsupported(Function):
    """A Heat function cloudtmpl does not evaluate: a ``function-unsupported`` diagnostic."""

    why: ClassVar[str] = "it is not supported"
    hint: ClassVar[str] = ""

    @classmethod
    def parse(cls, args: Any, path: Path, p: Parser) -> Function:
        name = str(path[-1]) if path else cls.name
        raise _fail("function-unsupported", f"{name}: {cls.why}", p.key_loc(path), cls.hint)


class Yaql(Unsupported):
    name = "yaql"
    why = "YAQL expressions are not supported by cloudtmpl"
    hint = ("rewrite the expression with HOT functions (map_merge, list_concat, repeat, "
            "filter, contains, str_split, ...)")


class ResourceFacade(Unsupported):
    name = "resource_facade"
    why = ("resource_facade (the metadata/policies of the resource that stands for a nested "
           "template) is not supported by cloudtmpl")
    hint = "pass the value to the nested template as a parameter instead"


class CfnFunction(Unsupported):
    name = "Fn::*"
    why = "CloudFormation-style functions are not supported by cloudtmpl"
    hint = ("use the HOT equivalent: get_param, get_resource, list_join, str_split, "
            "str_replace or a path in get_attr/get_param")


# --------------------------------------------------------------------------- versions

#: Functions added (or changed) by each HOT version, from Heat's template classes.
_ADDED: tuple[tuple[str, Mapping[str, type[Function]]], ...] = (
    ("2013-05-23", {
        "get_attr": GetAttr, "get_file": GetFile, "get_param": GetParam,
        "get_resource": GetResource, "list_join": ListJoin, "str_replace": StrReplace,
        "resource_facade": ResourceFacade,
        **{cfn: CfnFunction for cfn in (
            "Fn::GetAZs", "Fn::Join", "Fn::Split", "Fn::Replace", "Fn::Base64",
            "Fn::MemberListToMap", "Fn::ResourceFacade", "Fn::Select", "Ref")}}),
    ("2015-04-30", {"digest": Digest, "repeat": Repeat}),
    ("2015-10-15", {"get_attr": GetAttrAll, "list_join": ListJoinMulti,
                    "str_replace": StrReplaceJson, "str_split": StrSplit}),
    ("2016-04-08", {"map_merge": MapMerge}),
    ("2016-10-14", {"yaql": Yaql, "map_replace": MapReplace, "if": If,
                    "repeat": RepeatWithMap}),
    ("2017-02-24", {"filter": Filter, "str_replace_strict": StrReplaceStrict}),
    ("2017-09-01", {"make_url": MakeURL, "list_concat": ListConcat,
                    "list_concat_unique": ListConcatUnique,
                    "str_replace_vstrict": StrReplaceVStrict, "contains": Contains,
                    "repeat": RepeatWithPermutations}),
    ("2021-04-16", {"if": IfNullable}),
)

#: Functions removed by a HOT version (name -> (version, what to use instead)).
_REMOVED: Mapping[str, tuple[str, str]] = {
    **{cfn: ("2014-10-16", "the HOT functions") for cfn in (
        "Fn::GetAZs", "Fn::Join", "Fn::Split", "Fn::Replace", "Fn::Base64",
        "Fn::MemberListToMap", "Fn::ResourceFacade", "Ref")},
    "Fn::Select": ("2015-10-15", "a path in get_attr or get_param"),
}

#: Condition functions added by each HOT version (conditions appeared in 2016-10-14).
_CONDITION_ADDED: tuple[tuple[str, Mapping[str, type[Function]]], ...] = (
    ("2016-10-14", {"equals": Equals, "get_param": GetParam, "not": Not, "and": And,
                    "or": Or}),
    ("2017-09-01", {"yaql": Yaql, "contains": Contains}),
)


def _tables(added: tuple[tuple[str, Mapping[str, type[Function]]], ...],
            removed: Mapping[str, tuple[str, str]]) -> dict[str, dict[str, type[Function]]]:
    out: dict[str, dict[str, type[Function]]] = {}
    current: dict[str, type[Function]] = {}
    changes = dict(added)
    for version in HOT_DATES:
        current = {**current, **changes.get(version, {})}
        current = {k: v for k, v in current.items()
                   if k not in removed or version < removed[k][0]}
        out[version] = current
    return out


#: HOT version date -> function name -> class (outside conditions).
FUNCTIONS: Mapping[str, Mapping[str, type[Function]]] = _tables(_ADDED, _REMOVED)
#: HOT version date -> condition function name -> class (inside conditions).
CONDITION_FUNCTIONS: Mapping[str, Mapping[str, type[Function]]] = _tables(_CONDITION_ADDED, {})

def _first_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for version in HOT_DATES:
        for table in (FUNCTIONS, CONDITION_FUNCTIONS):
            for name in table[version]:
                out.setdefault(name, version)
    return out


#: Function name -> the first HOT version that has it (as a function or condition function).
SINCE: Mapping[str, str] = _first_versions()

#: Every function name of the newest HOT version -> its class (both scopes).
REGISTRY: dict[str, type[Function]] = {
    **FUNCTIONS[LATEST_HOT_VERSION], **CONDITION_FUNCTIONS[LATEST_HOT_VERSION]}


def available(name: str, version: str, condition: bool = False) -> bool:
    """Is ``name`` a function of HOT ``version`` (a date or release name) in that scope?"""
    date = canonical_version(version) or LATEST_HOT_VERSION
    return name in (CONDITION_FUNCTIONS if condition else FUNCTIONS)[date]


def _misuse(key: str, p: Parser, loc: Loc) -> Diagnostic | None:
    """Why a one-key mapping whose key is a Heat function name is not a call here."""
    conditions = CONDITION_FUNCTIONS[p.version]
    values = FUNCTIONS[p.version]
    if p.condition:
        if key in SINCE and key not in conditions and SINCE[key] > p.version \
                and key in CONDITION_FUNCTIONS[LATEST_HOT_VERSION]:
            return _not_available(key, SINCE[key], loc, f"the condition function '{key}'")
        if key in SINCE or key in _REMOVED:
            allowed = ", ".join(sorted(conditions)) or "none before HOT 2016-10-14"
            return Diagnostic("invalid-condition", f"'{key}' cannot be used in a condition",
                              loc, f"conditions may use {allowed}, condition names and "
                              "true/false")
        return None
    if key in _REMOVED and p.version >= _REMOVED[key][0]:
        version, instead = _REMOVED[key]
        return Diagnostic("function-not-available", f"'{key}' was removed in HOT "
                          f"{version_label(version)}", loc, f"use {instead}")
    if key in SINCE and key not in values:
        if key in FUNCTIONS[LATEST_HOT_VERSION]:
            return _not_available(key, SINCE[key], loc)
        return Diagnostic(
            "function-not-available", f"'{key}' is a condition function",
            loc, "use it in the conditions section, a 'condition:' or the first "
            "item of 'if'" + ("" if p.since(SINCE[key]) else
                             f" (conditions need HOT {version_label(SINCE[key])})"))
    return None


# --------------------------------------------------------------------------- trees


def parse_tree(value: Any, path: Path, doc: Document | None, diags: list[Diagnostic],
               *, version: str = LATEST_HOT_VERSION, condition: bool = False) -> Any:
    """``value`` with every function call replaced by a :class:`Function` node.

    ``version`` is the template's ``heat_template_version`` (a date or release
    name; unknown ones count as the newest), ``condition`` selects condition
    scope.  Problems are appended to ``diags``; a malformed call becomes UNKNOWN.
    """
    date = canonical_version(version) or LATEST_HOT_VERSION
    return _parse(value, path, Parser(doc, date, condition), diags)


def _parse(value: Any, path: Path, p: Parser, diags: list[Diagnostic]) -> Any:
    if isinstance(value, Mapping):
        if len(value) == 1:
            (key,) = value
            if isinstance(key, str):
                table = CONDITION_FUNCTIONS if p.condition else FUNCTIONS
                cls = table[p.version].get(key)
                if cls is not None:
                    try:
                        return cls.parse(value[key], (*path, key), p)
                    except DiagnosticError as exc:
                        diags.extend(exc.diagnostics)
                        return UNKNOWN
                misuse = _misuse(key, p, p.key_loc((*path, key)))
                if misuse is not None:
                    diags.append(misuse)
                    if misuse.code == "invalid-condition":
                        return UNKNOWN
        return {k: _parse(v, (*path, k), p, diags) for k, v in value.items()}
    if isinstance(value, list):
        return [_parse(v, (*path, i), p, diags) for i, v in enumerate(value)]
    return value


def walk(tree: Any) -> Iterator[Function]:
    """Every function node in ``tree``, outermost first."""
    if isinstance(tree, Function):
        yield tree
        for arg in tree.args:
            yield from walk(arg)
    elif isinstance(tree, Mapping):
        for v in tree.values():
            yield from walk(v)
    elif isinstance(tree, (list, tuple)):
        for v in tree:
            yield from walk(v)


def dependencies(tree: Any) -> set[str]:
    """Names of the resources a tree references (get_resource, get_attr)."""
    if isinstance(tree, Function):
        return tree.dependencies()
    if isinstance(tree, Mapping):
        return set().union(*(dependencies(v) for v in tree.values()))
    if isinstance(tree, (list, tuple)):
        return set().union(*(dependencies(v) for v in tree))
    return set()


def _collect(tree: Any, each: Any) -> Any:
    """Apply ``each`` to the items of a mapping or list, dropping OMITted ones."""
    if isinstance(tree, Mapping):
        items = ((k, each(v)) for k, v in tree.items())
        return {k: v for k, v in items if v is not OMIT}
    return [v for v in (each(v) for v in tree) if v is not OMIT]


def evaluate(tree: Any, ctx: Context) -> Any:
    """The plain value of a tree (may contain UNKNOWN; OMIT when a two-argument ``if``
    at the top is false).

    Sensitive values (:mod:`cloudtmpl.sensitive`) stay marked, and the result of a
    function call that read one is marked too (see :func:`call`).

    Raises DiagnosticError (``function-error``) when a function cannot be
    computed (a missing key, a non-list to join, ...).
    """
    if isinstance(tree, Function):
        return call(tree, ctx)
    if isinstance(tree, (Mapping, list, tuple)):
        if isinstance(tree, Mapping) and any(is_marked(k) for k in tree):
            touched()
        out = _collect(tree, lambda v: evaluate(v, ctx))
        return mark(out) if is_marked(tree) else out
    if is_marked(tree):
        touched()
    return tree


def call(fn: Function, ctx: Context) -> Any:
    """``fn``'s result, marked sensitive when computing it read a sensitive value (an
    argument, a parameter or an attribute the context answered with): what is derived
    from a secret is a secret.  The count of what was read is per thread."""
    start = touches()
    value = fn.result(ctx)
    if value is UNKNOWN or value is OMIT:
        return value
    if touches() != start or has_marks(value):
        touched()
        return value if is_marked(value) else mark(value)
    return value


def partial_evaluate(tree: Any, ctx: Context) -> Any:
    """Evaluate everything that does not depend on resources.

    Nodes that reference resources stay in place (with their other arguments
    evaluated), so ``{str_replace: ...}`` around a ``get_attr`` stays a node.
    """
    if isinstance(tree, Function):
        if not tree.dependencies():
            return call(tree, ctx)
        return tree.partial(ctx)
    if isinstance(tree, (Mapping, list, tuple)):
        return _collect(tree, lambda v: partial_evaluate(v, ctx))
    return tree
