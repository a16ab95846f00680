"""HOT intrinsic functions, one small class each (Heat style).

A template value is parsed into a *tree*: plain data (dict, list, scalars) in
which every function call is replaced by an immutable :class:`Function` node.
A one-key mapping whose key is a registered function name is a call; any other
mapping is data (unknown names are never guessed, so ``{get_params: x}`` stays
a mapping).

Each function class

* ``parse(args, path, doc)`` checks the *shape* of its arguments and raises
  :class:`~cloudtmpl.diagnostics.DiagnosticError` (code ``function-args``, with
  the location and a hint showing the correct form);
* ``dependencies()`` names the resources it references;
* ``result(ctx)`` computes its value against a :class:`Context`.

Values that are known only after apply are :data:`cloudtmpl.model.UNKNOWN`; a
function whose needed inputs are unknown returns UNKNOWN, except where the
answer is decidable anyway (``and`` with a false operand, ``if`` whose condition
is known, ...).  :func:`partial_evaluate` evaluates everything that does not
depend on resources and leaves resource-dependent nodes in place.

To add a function (``str_split``, ``repeat``, ``map_merge``, ...), subclass
:class:`Function`, set ``name`` and ``usage``, implement ``parse``/``result``
and add it to :data:`REGISTRY`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol

from cloudtmpl.diagnostics import NOWHERE, Diagnostic, DiagnosticError, Loc
from cloudtmpl.loader import Document, Path
from cloudtmpl.model import UNKNOWN, is_unknown


class Context(Protocol):
    """What functions can ask about the stack being evaluated.

    Any method may return :data:`~cloudtmpl.model.UNKNOWN`.
    """

    def param(self, name: str) -> Any: ...

    def condition(self, name: str) -> Any: ...

    def resource_ref(self, name: str) -> Any: ...

    def resource_attr(self, name: str, attr: str, path: tuple[Any, ...]) -> Any: ...


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


# --------------------------------------------------------------------------- base


def _fail(code: str, message: str, loc: Loc, hint: str = "") -> DiagnosticError:
    return DiagnosticError([Diagnostic(code, message, loc, hint)])


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
    def parse(cls, args: Any, path: Path, doc: Document | None) -> Function:
        raise NotImplementedError

    @classmethod
    def _loc(cls, path: Path, doc: Document | None) -> Loc:
        return doc.key_loc(path) if doc is not None else NOWHERE

    @classmethod
    def _bad(cls, problem: str, path: Path, doc: Document | None) -> DiagnosticError:
        return _fail("function-args", f"{cls.name}: {problem}", cls._loc(path, doc),
                     f"write it as {cls.usage}")

    @classmethod
    def _subtrees(cls, values: list[tuple[Any, Path]], doc: Document | None) -> list[Any]:
        """Parse nested argument values, raising all their diagnostics at once."""
        diags: list[Diagnostic] = []
        out = [parse_tree(v, p, doc, diags) for v, p in values]
        if diags:
            raise DiagnosticError(diags)
        return out

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

    def raw(self) -> Any:
        """The arguments as they would be written in a template."""
        return list(self.args)

    def to_text(self) -> str:
        return "{" + self.name + ": " + to_text(self.raw()) + "}"

    def error(self, message: str, hint: str = "") -> DiagnosticError:
        return _fail("function-error", f"{self.name}: {message}", self.loc, hint)


# --------------------------------------------------------------------------- references


class GetParam(Function):
    """``{get_param: name}`` or ``{get_param: [name, key_or_index, ...]}``."""

    name = "get_param"
    usage = "{get_param: name} or {get_param: [name, key_or_index, ...]}"

    @property
    def param_name(self) -> str:
        return str(self.args[0])

    @classmethod
    def parse(cls, args: Any, path: Path, doc: Document | None) -> Function:
        if isinstance(args, str):
            return cls((args,), cls._loc(path, doc))
        if not isinstance(args, list) or not args:
            raise cls._bad("expected a parameter name or a non-empty list", path, doc)
        if not isinstance(args[0], str):
            raise cls._bad("the first argument must be a parameter name", path, doc)
        rest = cls._subtrees([(a, (*path, i)) for i, a in enumerate(args[1:], 1)], doc)
        return cls((args[0], *rest), cls._loc(path, doc))

    def result(self, ctx: Context) -> Any:
        value = ctx.param(self.param_name)
        for key_tree in self.args[1:]:
            key = evaluate(key_tree, ctx)
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
    raise fn.error(f"cannot look up '{key}' in a {type(value).__name__} value")


class GetResource(Function):
    """``{get_resource: name}``: the resource's reference (usually its id)."""

    name = "get_resource"
    usage = "{get_resource: resource_name}"

    @property
    def resource(self) -> str:
        return str(self.args[0])

    @classmethod
    def parse(cls, args: Any, path: Path, doc: Document | None) -> Function:
        if not isinstance(args, str) or not args:
            raise cls._bad("expected a resource name", path, doc)
        return cls((args,), cls._loc(path, doc))

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

    @property
    def resource(self) -> str:
        return str(self.args[0])

    @property
    def attribute(self) -> str:
        return str(self.args[1])

    @classmethod
    def parse(cls, args: Any, path: Path, doc: Document | None) -> Function:
        if not isinstance(args, list) or len(args) < 2:
            raise cls._bad("expected a list of at least a resource name and an attribute",
                           path, doc)
        if not isinstance(args[0], str) or not isinstance(args[1], str):
            raise cls._bad("the resource and attribute names must be strings", path, doc)
        rest = cls._subtrees([(a, (*path, i)) for i, a in enumerate(args[2:], 2)], doc)
        return cls((args[0], args[1], *rest), cls._loc(path, doc))

    def with_attribute(self, attribute: str) -> GetAttr:
        return replace(self, args=(self.args[0], attribute, *self.args[2:]))

    def dependencies(self) -> set[str]:
        out = {self.resource}
        for arg in self.args[2:]:
            out |= dependencies(arg)
        return out

    def result(self, ctx: Context) -> Any:
        path = tuple(evaluate(a, ctx) for a in self.args[2:])
        if is_unknown(path):
            return UNKNOWN
        return ctx.resource_attr(self.resource, self.attribute, path)


# --------------------------------------------------------------------------- strings


def _stringify(fn: Function, value: Any, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    raise fn.error(f"{what} must be a string, not {type(value).__name__}")


class StrReplace(Function):
    """``{str_replace: {template: ..., params: {placeholder: value, ...}}}``.

    Placeholders are replaced in one pass, longest first, so a replacement is
    never replaced again.  Lists and maps are substituted as JSON.
    """

    name = "str_replace"
    usage = "{str_replace: {template: 'text with $var', params: {$var: value}}}"

    @classmethod
    def parse(cls, args: Any, path: Path, doc: Document | None) -> Function:
        if not isinstance(args, Mapping):
            raise cls._bad("expected a mapping with 'template' and 'params'", path, doc)
        missing = [k for k in ("template", "params") if k not in args]
        extra = [str(k) for k in args if k not in ("template", "params")]
        if missing or extra:
            problem = (f"missing {', '.join(repr(k) for k in missing)}" if missing
                       else f"unexpected key(s) {', '.join(repr(k) for k in extra)}")
            raise cls._bad(problem, path, doc)
        template, params = cls._subtrees(
            [(args["template"], (*path, "template")), (args["params"], (*path, "params"))], doc)
        if not isinstance(template, (str, Function)):
            raise cls._bad("'template' must be a string", (*path, "template"), doc)
        if not isinstance(params, (Mapping, Function)):
            raise cls._bad("'params' must be a mapping", (*path, "params"), doc)
        return cls((template, params), cls._loc(path, doc))

    def raw(self) -> Any:
        return {"template": self.args[0], "params": self.args[1]}

    def result(self, ctx: Context) -> Any:
        template = evaluate(self.args[0], ctx)
        params = evaluate(self.args[1], ctx)
        if is_unknown(template) or is_unknown(params):
            return UNKNOWN
        if not isinstance(template, str):
            raise self.error("'template' must be a string")
        if not isinstance(params, Mapping):
            raise self.error("'params' must be a mapping")
        mapping = {str(k): _stringify(self, v, f"the value of '{k}'") for k, v in params.items()}
        keys = sorted((k for k in mapping if k), key=len, reverse=True)
        if not keys:
            return template
        pattern = re.compile("|".join(re.escape(k) for k in keys))
        return pattern.sub(lambda m: mapping[m.group(0)], template)


class ListJoin(Function):
    """``{list_join: [delimiter, [item, ...], [item, ...], ...]}``."""

    name = "list_join"
    usage = "{list_join: [delimiter, [item, ...], ...]}"

    @classmethod
    def parse(cls, args: Any, path: Path, doc: Document | None) -> Function:
        if not isinstance(args, list) or len(args) < 2:
            raise cls._bad("expected a delimiter and at least one list", path, doc)
        parsed = cls._subtrees([(a, (*path, i)) for i, a in enumerate(args)], doc)
        if not isinstance(parsed[0], (str, Function)):
            raise cls._bad("the delimiter must be a string", (*path, 0), doc)
        for i, item in enumerate(parsed[1:], 1):
            if not isinstance(item, (list, Function)):
                raise cls._bad(f"argument {i + 1} must be a list", (*path, i), doc)
        return cls(tuple(parsed), cls._loc(path, doc))

    def result(self, ctx: Context) -> Any:
        delim = evaluate(self.args[0], ctx)
        lists = [evaluate(a, ctx) for a in self.args[1:]]
        if is_unknown(delim) or is_unknown(lists):
            return UNKNOWN
        if not isinstance(delim, str):
            raise self.error("the delimiter must be a string")
        items: list[str] = []
        for value in lists:
            if not isinstance(value, list):
                raise self.error(f"expected a list to join, got {type(value).__name__}")
            items.extend(_stringify(self, v, "a list item") for v in value)
        return delim.join(items)


# --------------------------------------------------------------------------- conditions


def _parse_condition(cls: type[Function], arg: Any, path: Path,
                     doc: Document | None) -> Any:
    """A condition argument: a condition name, a boolean or a condition function."""
    if isinstance(arg, (str, bool)):
        return arg
    if isinstance(arg, Mapping):
        (tree,) = cls._subtrees([(arg, path)], doc)
        if isinstance(tree, Function):
            return tree
    raise cls._bad("a condition must be a condition name, true/false or a condition "
                   "function such as {equals: [a, b]}", path, doc)


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

    @classmethod
    def parse(cls, args: Any, path: Path, doc: Document | None) -> Function:
        if not isinstance(args, list) or len(args) != 3:
            raise cls._bad("expected a list of exactly 3 items", path, doc)
        cond = _parse_condition(cls, args[0], (*path, 0), doc)
        yes, no = cls._subtrees([(args[1], (*path, 1)), (args[2], (*path, 2))], doc)
        return cls((cond, yes, no), cls._loc(path, doc))

    def dependencies(self) -> set[str]:
        return dependencies(self.args[1]) | dependencies(self.args[2])

    def result(self, ctx: Context) -> Any:
        cond = condition_value(self, self.args[0], ctx)
        if cond is UNKNOWN:
            return UNKNOWN
        return evaluate(self.args[1] if cond else self.args[2], ctx)

    def partial(self, ctx: Context) -> Any:
        cond = condition_value(self, self.args[0], ctx)
        if cond is UNKNOWN:
            return super().partial(ctx)
        return partial_evaluate(self.args[1] if cond else self.args[2], ctx)


class Equals(Function):
    """``{equals: [a, b]}``."""

    name = "equals"
    usage = "{equals: [value1, value2]}"

    @classmethod
    def parse(cls, args: Any, path: Path, doc: Document | None) -> Function:
        if not isinstance(args, list) or len(args) != 2:
            raise cls._bad("expected a list of exactly 2 values", path, doc)
        parsed = cls._subtrees([(a, (*path, i)) for i, a in enumerate(args)], doc)
        return cls(tuple(parsed), cls._loc(path, doc))

    def result(self, ctx: Context) -> Any:
        a, b = (evaluate(x, ctx) for x in self.args)
        if is_unknown(a) or is_unknown(b):
            return UNKNOWN
        return bool(a == b)


class Not(Function):
    """``{not: condition}``."""

    name = "not"
    usage = "{not: condition_name_or_function}"

    @classmethod
    def parse(cls, args: Any, path: Path, doc: Document | None) -> Function:
        return cls((_parse_condition(cls, args, path, doc),), cls._loc(path, doc))

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
    def parse(cls, args: Any, path: Path, doc: Document | None) -> Function:
        if not isinstance(args, list) or len(args) < 2:
            raise cls._bad("expected a list of at least 2 conditions", path, doc)
        diags: list[Diagnostic] = []
        conds = []
        for i, a in enumerate(args):
            try:
                conds.append(_parse_condition(cls, a, (*path, i), doc))
            except DiagnosticError as exc:
                diags.extend(exc.diagnostics)
        if diags:
            raise DiagnosticError(diags)
        return cls(tuple(conds), cls._loc(path, doc))

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


#: Function name -> class.  A one-key mapping whose key is here is a call.
REGISTRY: dict[str, type[Function]] = {
    cls.name: cls
    for cls in (GetParam, GetResource, GetAttr, StrReplace, ListJoin, If, Equals, Not, And, Or)
}


# --------------------------------------------------------------------------- trees


def parse_tree(value: Any, path: Path, doc: Document | None, diags: list[Diagnostic]) -> Any:
    """``value`` with every function call replaced by a :class:`Function` node.

    Problems are appended to ``diags``; a malformed call becomes UNKNOWN.
    """
    if isinstance(value, Mapping):
        if len(value) == 1:
            (key,) = value
            cls = REGISTRY.get(key) if isinstance(key, str) else None
            if cls is not None:
                try:
                    return cls.parse(value[key], (*path, key), doc)
                except DiagnosticError as exc:
                    diags.extend(exc.diagnostics)
                    return UNKNOWN
        return {k: parse_tree(v, (*path, k), doc, diags) for k, v in value.items()}
    if isinstance(value, list):
        return [parse_tree(v, (*path, i), doc, diags) for i, v in enumerate(value)]
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


def evaluate(tree: Any, ctx: Context) -> Any:
    """The plain value of a tree (may contain UNKNOWN).

    Raises DiagnosticError (``function-error``) when a function cannot be
    computed (a missing key, a non-list to join, ...).
    """
    if isinstance(tree, Function):
        return tree.result(ctx)
    if isinstance(tree, Mapping):
        return {k: evaluate(v, ctx) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [evaluate(v, ctx) for v in tree]
    return tree


def partial_evaluate(tree: Any, ctx: Context) -> Any:
    """Evaluate everything that does not depend on resources.

    Nodes that reference resources stay in place (with their other arguments
    evaluated), so ``{str_replace: ...}`` around a ``get_attr`` stays a node.
    """
    if isinstance(tree, Function):
        if not tree.dependencies():
            return tree.result(ctx)
        return tree.partial(ctx)
    if isinstance(tree, Mapping):
        return {k: partial_evaluate(v, ctx) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [partial_evaluate(v, ctx) for v in tree]
    return tree
