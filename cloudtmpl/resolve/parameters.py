"""Parameters as Heat has them: conversion of given text to the declared type,
constraints (and whether a constraint fits its type), merge strategies of
environment values (pure functions); and a template's parameters resolved from
their defaults and the values given (:func:`resolve_parameters`)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cloudtmpl.diagnostics import NOWHERE, Loc
from cloudtmpl.functions import (
    to_text,
)
from cloudtmpl.loader import Path
from cloudtmpl.model import UNKNOWN
from cloudtmpl.resolve.scope import Scope
from cloudtmpl.resolve.values import CustomConstraint
from cloudtmpl.schema import (
    describe,
    did_you_mean,
)
from cloudtmpl.sensitive import carry, mark

_TRUE = ("t", "true", "on", "y", "yes", "1")
_FALSE = ("f", "false", "off", "n", "no", "0")
INT_RE = re.compile(r"^[+-]?\d+$")




def bool_from(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, int)) else None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def num_from(value: Any) -> int | float | None:
    """A number's value; None for anything else, and for what is no JSON number: NaN,
    an infinity, a float out of range (``1e999``) or more digits than an int takes."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        try:
            num: int | float = int(text) if INT_RE.match(text) else float(text)
        except ValueError:
            return None
        return None if isinstance(num, float) and not math.isfinite(num) else num
    return None


def non_finite(value: Any) -> bool:
    """NaN, an infinity or a number too large for a float: no value a number may have."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, str) and not INT_RE.match(value.strip()):
        try:
            return not math.isfinite(float(value.strip()))
        except ValueError:
            return False
    return isinstance(value, str) and num_from(value) is None  # an int of too many digits


def convert_parameter(ptype: str, value: Any) -> tuple[Any, str | None]:
    """Heat's conversion of a parameter value: ``(typed value, None)`` or ``(None, problem)``."""
    if ptype == "string":
        if isinstance(value, str):
            return value, None
        if isinstance(value, bool):
            return ("true" if value else "false"), None
        if isinstance(value, (int, float)):
            return str(value), None
        return None, f"expected a string, got {describe(value)}"
    if ptype == "number":
        num = num_from(value)
        if num is None and non_finite(value):
            text = to_text(value)
            shown = text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"
            return None, (f"{shown} is not a finite number (NaN, infinities and numbers "
                          "beyond 1.8e308 have no JSON form)")
        if num is None:
            return None, f"expected a number, got {to_text(value)}"
        return num, None
    if ptype == "boolean":
        flag = bool_from(value)
        if flag is None:
            return None, ("expected a boolean (true/false, yes/no, on/off, 1/0), "
                          f"got {to_text(value)}")
        return flag, None
    if ptype == "json":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                return None, f"expected JSON, got invalid JSON ({exc.msg})"
        if isinstance(value, (dict, list)):
            return value, None
        return None, f"expected a JSON map or list, got {describe(value)}"
    if ptype == "comma_delimited_list":
        if isinstance(value, list):
            if all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
                return [str(v) for v in value], None
            return None, "expected a list of strings"
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            text = str(value).strip()
            return ([p.strip() for p in text.split(",")] if text else []), None
        return None, f"expected a comma-delimited list, got {describe(value)}"
    return None, f"unknown parameter type '{ptype}'"


def constraint_problem(ptype: str, value: Any, constraint: Mapping[str, Any]) -> str | None:
    """Why ``value`` violates ``constraint`` (Heat semantics), or None."""
    if "allowed_values" in constraint and isinstance(constraint["allowed_values"], list):
        allowed = constraint["allowed_values"]
        if ptype == "number":
            nums = [num_from(a) for a in allowed]
            ok = num_from(value) in nums
        elif isinstance(value, list):
            ok = all(v in allowed or str(v) in [str(a) for a in allowed] for v in value)
        else:
            ok = value in allowed or str(value) in [str(a) for a in allowed]
        if not ok:
            return f"'{to_text(value)}' is not one of the allowed values: " + ", ".join(
                to_text(a) for a in allowed)
    if isinstance(constraint.get("range"), Mapping) and ptype == "number":
        lo, hi = constraint["range"].get("min"), constraint["range"].get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            return f"{value} is out of range ({_bounds(lo, hi)})"
    if isinstance(constraint.get("length"), Mapping) and isinstance(value, (str, list, dict)):
        lo, hi = constraint["length"].get("min"), constraint["length"].get("max")
        n = len(value)
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            return f"length {n} is out of range ({_bounds(lo, hi)})"
    if isinstance(constraint.get("modulo"), Mapping) and ptype == "number":
        step, offset = constraint["modulo"].get("step"), constraint["modulo"].get("offset")
        numeric = isinstance(step, (int, float)) and isinstance(offset, (int, float))
        if numeric and _modulo_problem(step, offset) is None and value % step != offset:
            return f"{value} is not a multiple of {step} plus {offset}"
    pattern = constraint.get("allowed_pattern")
    if isinstance(pattern, str) and isinstance(value, str):
        try:
            match = re.match(pattern, value)
        except re.error:
            return None  # reported as invalid-constraint
        if match is None or match.end() != len(value):
            return f"'{value}' does not match the pattern '{pattern}'"
    return None


def _bounds(lo: Any, hi: Any) -> str:
    if lo is not None and hi is not None:
        return f"must be between {lo} and {hi}"
    if lo is not None:
        return f"must be at least {lo}"
    return f"must be at most {hi}"


#: The parameter types each constraint applies to (Heat's ``valid_types``).
_CONSTRAINT_TYPES: Mapping[str, tuple[str, ...]] = {
    "length": ("string", "comma_delimited_list", "json"),
    "range": ("number",),
    "modulo": ("number",),
    "allowed_values": ("string", "number", "boolean", "comma_delimited_list"),
    "allowed_pattern": ("string",),
    "custom_constraint": ("string", "number", "boolean", "comma_delimited_list"),
}


def constraint_definition_problem(constraint: Mapping[str, Any], ptype: str) -> str | None:
    """Why a constraint definition is invalid for a ``ptype`` parameter (Heat's rules)."""
    kinds = [k for k in constraint if k in _CONSTRAINT_TYPES]
    if len(kinds) > 1:
        return (f"one constraint per list item, not {' and '.join(kinds)}: write each as "
                "its own '- ...' entry")
    if kinds and ptype not in _CONSTRAINT_TYPES[kinds[0]]:
        return (f"a {kinds[0]} constraint does not apply to a {ptype} parameter (only to "
                + ", ".join(_CONSTRAINT_TYPES[kinds[0]]) + ")")
    pattern = constraint.get("allowed_pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"allowed_pattern '{pattern}' is not a valid regular expression ({exc})"
    for kind in ("range", "length"):
        bounds = constraint.get(kind)
        if kind in constraint and not isinstance(bounds, Mapping):
            return f"{kind} must be a mapping {{min: N, max: N}}"
        if isinstance(bounds, Mapping):
            bad = [k for k in ("min", "max") if bounds.get(k) is not None
                   and (isinstance(bounds[k], bool) or not isinstance(bounds[k], (int, float)))]
            if bad:
                return f"{kind} {bad[0]} must be a number, not {describe(bounds[bad[0]])}"
    modulo = constraint.get("modulo")
    if isinstance(modulo, Mapping):
        return _modulo_problem(modulo.get("step"), modulo.get("offset"))
    return None


def _modulo_problem(step: Any, offset: Any) -> str | None:
    """Heat's rules for ``modulo: {step, offset}``."""
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (step, offset)):
        return None  # a shape problem, reported by the schema
    if int(step) != step or int(offset) != offset:
        return "modulo step and offset must be integers"
    if step == 0:
        return "modulo step must not be 0"
    if abs(offset) >= abs(step):
        return "modulo offset must be smaller (by absolute value) than step"
    if step * offset < 0:
        return "modulo step and offset must be both positive or both negative"
    return None




def merge_parameter(ptype: Any, old: Any, new: Any, deep: bool) -> tuple[Any, str | None]:
    """Heat's ``merge``/``deep_merge`` of an environment value into an earlier one."""
    if ptype == "json":
        (a, pa), (b, pb) = convert_parameter("json", old), convert_parameter("json", new)
        if pa or pb or not (isinstance(a, dict) and isinstance(b, dict)):
            return None, "only JSON maps can be merged"
        return _merge_maps(a, b, deep), None
    if ptype == "comma_delimited_list":
        (a, pa), (b, pb) = (convert_parameter(ptype, old), convert_parameter(ptype, new))
        if pa or pb:
            return None, "only lists can be merged"
        return [*a, *b], None
    if ptype == "string":
        (a, pa), (b, pb) = convert_parameter(ptype, old), convert_parameter(ptype, new)
        if pa or pb:
            return None, "only strings can be merged"
        return a + b, None
    return None, (f"'merge' and 'deep_merge' apply to json, comma_delimited_list and string "
                  f"parameters, not {ptype}")


def _merge_maps(old: Mapping[str, Any], new: Mapping[str, Any], deep: bool) -> dict[str, Any]:
    """``new`` over ``old``; deep: maps merged, lists extended, strings concatenated."""
    out = dict(old)
    for key, value in new.items():
        if value is None:
            continue
        before = out.get(key)
        if deep and before and isinstance(value, Mapping) and isinstance(before, Mapping):
            out[key] = _merge_maps(before, value, deep)
        elif deep and before and isinstance(value, list) and isinstance(before, list):
            out[key] = [*before, *value]
        elif deep and isinstance(value, str) and isinstance(before, str):
            out[key] = before + value
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------- a template's


@dataclass(frozen=True)
class Parameters:
    """A template's parameters resolved: the typed values known (hidden ones marked
    sensitive), which are hidden or immutable, where each is declared, and the
    custom constraints the engine checks later."""

    values: dict[str, Any] = field(default_factory=dict)
    hidden: frozenset[str] = frozenset()
    immutable: frozenset[str] = frozenset()
    locs: dict[str, Loc] = field(default_factory=dict)
    custom: tuple[CustomConstraint, ...] = ()


def resolve_parameters(scope: Scope, declared: Mapping[str, Mapping[str, Any]],
                       given: dict[str, tuple[Any, Loc]],
                       defaults: Mapping[str, tuple[Any, Loc]]) -> Parameters:
    """Each declared parameter from its default, the environments' ``parameter_defaults``
    (``defaults``) and values (``given``), a parent stack's values and ``-p``, converted
    and checked against its constraints in that order; the last valid one wins."""
    options, doc = scope.options, scope.doc
    given = dict(given)
    values: dict[str, Any] = {}
    hidden: set[str] = set()
    immutable: set[str] = set()
    locs: dict[str, Loc] = {}
    custom: list[CustomConstraint] = []
    for name, (value, loc) in options.parent_values.items():
        given[name] = (value, loc)
    for name in options.deferred:
        values[name] = UNKNOWN  # known after apply: the parent's resource values
    for name, value in options.params.items():
        if name not in declared:
            hint = did_you_mean(name, declared, "parameters") or (
                "the template declares no parameters")
            scope.add("unknown-parameter",
                      f"-p {name}: the template declares no parameter '{name}'", NOWHERE, hint)
            continue
        given[name] = (value, Loc(f"<command line: -p {name}>"))
    for name, pdef in declared.items():
        ppath: Path = ("parameters", name)
        ptype = pdef.get("type")
        locs[name] = doc.key_loc(ppath)
        if pdef.get("hidden") is True:
            hidden.add(name)
        if pdef.get("immutable") is True:
            immutable.add(name)
        if "tags" in pdef:
            scope.feature("parameter 'tags'", "2018-03-02", doc.key_loc((*ppath, "tags")))
        if not isinstance(ptype, str):
            continue  # reported by the schema
        constraints = _constraints(scope, name, ptype, ppath)
        candidates: list[tuple[Any, Loc, str]] = []
        if "default" in pdef and pdef["default"] is not None:
            candidates.append((pdef["default"], doc.loc((*ppath, "default")), "default"))
        if name in defaults:
            candidates.append((*defaults[name], "parameter_defaults"))
        if name in given:
            candidates.append((*given[name], "value"))
        typed: Any = UNKNOWN
        typed_loc = NOWHERE
        for raw, loc, source in candidates:
            value, problem = convert_parameter(ptype, raw)
            value = carry(raw, value)  # a parent's sensitive value stays sensitive
            if problem is not None:
                code = "parameter-value" if ptype == "number" and non_finite(raw) \
                    else "parameter-type"
                if name in hidden:
                    problem = f"the (hidden) value is not a valid {ptype}"
                scope.add(code, f"parameter '{name}' ({ptype}): {problem}", loc,
                          f"give '{name}' a {'finite ' * (code == 'parameter-value')}"
                          f"{ptype} value")
                typed = UNKNOWN
                continue
            _check_constraints(scope, name, ptype, value, constraints, loc, source,
                               name in hidden)
            typed, typed_loc = value, loc
        if typed is not UNKNOWN:
            custom.extend(
                CustomConstraint(name, str(c["custom_constraint"]), typed, typed_loc,
                                 name in hidden)
                for c in constraints if isinstance(c.get("custom_constraint"), str))
        if not candidates and name in options.deferred:
            continue
        if not candidates:
            if options.mode == "plan":
                scope.add("missing-parameter", f"parameter '{name}' has no value",
                          doc.key_loc(ppath),
                          f"pass -p {name}=VALUE, set it in an environment file (-e) or "
                          "give it a 'default:'")
            continue
        if typed is not UNKNOWN:
            # a hidden value is sensitive, and so is everything computed from it
            values[name] = mark(typed) if name in hidden else typed
    return Parameters(values, frozenset(hidden), frozenset(immutable), locs, tuple(custom))


def _constraints(scope: Scope, name: str, ptype: str, ppath: Path) -> list[Mapping[str, Any]]:
    """The parameter's valid constraints; invalid ones are reported and skipped."""
    doc = scope.doc
    raw = doc.get((*ppath, "constraints"))
    out = []
    for i, c in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(c, Mapping):
            continue  # reported by the schema
        cpath: Path = (*ppath, "constraints", i)
        if "modulo" in c:
            scope.feature("the modulo constraint", "2017-02-24",
                          doc.key_loc((*cpath, "modulo")))
        problem = constraint_definition_problem(c, ptype)
        if problem:
            scope.add("invalid-constraint", f"parameter '{name}': {problem}",
                      doc.loc(cpath), "fix the constraint")
            continue
        out.append(c)
    return out


def _check_constraints(scope: Scope, name: str, ptype: str, value: Any,
                       constraints: Sequence[Mapping[str, Any]], loc: Loc, source: str,
                       hidden: bool) -> None:
    for c in constraints:
        problem = constraint_problem(ptype, value, c)
        if problem is None:
            continue
        desc = c.get("description")
        if hidden:
            problem = "the (hidden) value violates a constraint"
        message = f"parameter '{name}': {desc if isinstance(desc, str) and desc else problem}"
        what = "the default" if source == "default" else "the value"
        rule = to_text({k: v for k, v in c.items() if k != "description"})
        scope.add("parameter-constraint", message, loc, f"{what} must satisfy: {rule}")


def check_parameter_groups(scope: Scope, declared: Mapping[str, Any]) -> None:
    """``parameter_groups`` name declared parameters, each at most once."""
    groups = scope.data.get("parameter_groups")
    if not isinstance(groups, list):
        return
    first: dict[str, Loc] = {}
    for gi, group in enumerate(groups):
        if isinstance(group, Mapping) and "parameters" not in group:
            scope.add("missing-key", "a parameter group must list its 'parameters'",
                      scope.doc.loc(("parameter_groups", gi)), "add 'parameters: [name, ...]'")
        names = group.get("parameters") if isinstance(group, Mapping) else None
        for i, pname in enumerate(names if isinstance(names, list) else []):
            loc = scope.doc.loc(("parameter_groups", gi, "parameters", i))
            if isinstance(pname, str) and pname not in declared:
                scope.add("unknown-parameter",
                          f"parameter group lists unknown parameter '{pname}'", loc,
                          did_you_mean(pname, declared, "parameters"))
            elif isinstance(pname, str) and pname in first:
                scope.add("duplicate-parameter",
                          f"parameter '{pname}' is listed twice in parameter_groups "
                          f"(first at line {first[pname].line})", loc,
                          "assign each parameter to one parameter group only")
            elif isinstance(pname, str):
                first[pname] = loc
