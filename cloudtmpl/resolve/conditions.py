"""Conditions as Heat has them: the template's ``conditions:`` section, evaluated
lazily (a condition may name another; a cycle is reported), and the ``condition:``
of a resource or an output, which drops it when false."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cloudtmpl.diagnostics import NOWHERE, Diagnostic, DiagnosticError, Loc
from cloudtmpl.functions import Function, condition_value
from cloudtmpl.loader import Path
from cloudtmpl.model import UNKNOWN
from cloudtmpl.resolve.checks import Names, check_condition_ref, check_tree
from cloudtmpl.resolve.scope import Scope, section


class _ConditionDefinition(Function):
    name = "condition"


_CONDITION_FN = _ConditionDefinition(())


class StackContext:
    """Evaluation context: parameters and conditions known, resources UNKNOWN."""

    def __init__(self, params: Mapping[str, Any], conditions: Mapping[str, Any],
                 condition_locs: Mapping[str, Loc], diags: list[Diagnostic],
                 files: Callable[[str, Loc], Any] | None = None) -> None:
        self.params = params
        self.files = files
        self.conditions = conditions
        self.condition_locs = condition_locs
        self.diags = diags
        self._values: dict[str, Any] = {}
        self._active: list[str] = []

    def param(self, name: str) -> Any:
        return self.params.get(name, UNKNOWN)

    def condition(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        if name not in self.conditions:
            return UNKNOWN  # reported by the static checks
        if name in self._active:
            cycle = [*self._active[self._active.index(name):], name]
            self.diags.append(Diagnostic(
                "condition-cycle", "conditions refer to each other in a cycle: "
                + " -> ".join(cycle), self.condition_locs.get(name, NOWHERE),
                "a condition must not depend on itself"))
            self._values[name] = UNKNOWN
            return UNKNOWN
        self._active.append(name)
        try:
            tree = self.conditions[name]
            value = condition_value(_CONDITION_FN, tree, self)
        except DiagnosticError as exc:
            self.diags.extend(exc.diagnostics)
            value = UNKNOWN
        finally:
            self._active.pop()
        self._values.setdefault(name, value)
        return self._values[name]

    def resource_ref(self, name: str) -> Any:
        return UNKNOWN

    def resource_attr(self, name: str, attr: str, path: tuple[Any, ...]) -> Any:
        return UNKNOWN

    def get_file(self, path: str, loc: Loc) -> Any:
        return self.files(path, loc) if self.files is not None else UNKNOWN


def parse_conditions(scope: Scope) -> tuple[dict[str, Any], dict[str, Loc]]:
    """The ``conditions:`` section: each condition's parsed tree and its location."""
    trees: dict[str, Any] = {}
    locs: dict[str, Loc] = {}
    doc = scope.doc
    if "conditions" in scope.data:
        scope.feature("the 'conditions' section", "2016-10-14", doc.key_loc(("conditions",)))
    for name, definition in section(scope.data, "conditions").items():
        path: Path = ("conditions", name)
        locs[str(name)] = doc.key_loc(path)
        tree = scope.parse(definition, path, condition=True)
        if isinstance(definition, Mapping) and not isinstance(tree, Function) \
                and tree is not UNKNOWN:
            scope.add("invalid-condition", f"condition '{name}' is not a condition function",
                      doc.loc(path), "use equals, not, and, or, or a condition name")
            tree = UNKNOWN
        trees[str(name)] = tree
    return trees, locs


def check_conditions(scope: Scope, names: Names, ctx: StackContext,
                     trees: Mapping[str, Any]) -> None:
    """Each declared condition's references checked, and its value computed once."""
    for cname, tree in trees.items():
        check_tree(scope, names, tree, trees)
        if isinstance(tree, str):
            check_condition_ref(scope, tree, scope.doc.loc(("conditions", cname)), trees)
        ctx.condition(cname)


def condition_of(scope: Scope, names: Names, definition: Mapping[str, Any], path: Path,
                 ctx: StackContext, conditions: Mapping[str, Any]) -> Any:
    """True/False/UNKNOWN for a resource's or output's ``condition:``."""
    if "condition" not in definition:
        return True
    cpath: Path = (*path, "condition")
    doc = scope.doc
    scope.feature("'condition'", "2016-10-14", doc.key_loc(cpath))
    raw = definition["condition"]
    cond = scope.parse(raw, cpath, condition=True)
    if isinstance(raw, Mapping) and not isinstance(cond, Function):
        if cond is not UNKNOWN:
            scope.add("invalid-condition", "'condition' is not a condition function",
                      doc.loc(cpath), "use a condition name, true/false or equals, "
                      "not, and, or")
        return UNKNOWN
    if not isinstance(cond, (str, bool, Function)):
        return UNKNOWN
    check_condition_ref(scope, cond, doc.loc(cpath), conditions)
    check_tree(scope, names, cond, conditions)
    try:
        return condition_value(_CONDITION_FN, cond, ctx)
    except DiagnosticError as exc:
        scope.diags.extend(exc.diagnostics)
        return UNKNOWN
