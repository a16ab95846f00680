"""The resolver: one template (and, through it, its nested templates) resolved into
desired resources.  Parameters are :mod:`.parameters`, SSH settings :mod:`.ssh`, the
values :mod:`.values`; composition (groups, nested stacks) is :mod:`cloudtmpl.compose`."""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import yaml

from cloudtmpl import limits
from cloudtmpl.compose import (
    DEFAULT_INDEX_VAR,
    GROUP_TYPES,
    OUTER,
    STACK_TYPE,
    Composite,
    Outer,
    Select,
    expand_deps,
    graft_tree,
    member_indexes,
    resolve_refs,
    rewrite,
    substitute_index,
)
from cloudtmpl.diagnostics import NOWHERE, Diagnostic, DiagnosticError, Loc, error
from cloudtmpl.functions import (
    OMIT,
    REGISTRY,
    And,
    Function,
    GetAttr,
    GetParam,
    GetResource,
    If,
    Not,
    condition_value,
    dependencies,
    parse_tree,
    partial_evaluate,
    to_text,
    walk,
)
from cloudtmpl.graph import cycle_diagnostics
from cloudtmpl.loader import Document, Path
from cloudtmpl.model import (
    UNKNOWN,
    DesiredResource,
    Output,
    Placement,
    canonical_json,
    is_unknown,
)
from cloudtmpl.names import address_problems
from cloudtmpl.placement import Request, Residency, Rule, candidates, solve
from cloudtmpl.resolve.parameters import (
    INT_RE,
    bool_from,
    constraint_definition_problem,
    constraint_problem,
    convert_parameter,
    merge_parameter,
    non_finite,
    num_from,
)
from cloudtmpl.resolve.ssh import ssh_problems, with_ssh_defaults
from cloudtmpl.resolve.values import (
    PSEUDO_PARAMETERS,
    CustomConstraint,
    ParseCache,
    RegistryEntry,
    ResolvedStack,
    ResolveOptions,
    ResourceRegistry,
)
from cloudtmpl.resources import (
    DEPLOY_KINDS,
    LOCAL_TARGET,
    TYPES,
    Alias,
    PropertySpec,
    ResourceType,
    known_type_names,
    lookup,
)
from cloudtmpl.schema import (
    LATEST_HOT_VERSION,
    MERGE_STRATEGIES,
    canonical_version,
    closest,
    describe,
    did_you_mean,
    validate_environment,
    version_label,
)
from cloudtmpl.sensitive import carry, mark, texts

# --------------------------------------------------------------------------- context


class _StackContext:
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


def _file_path_problem(path: str) -> str | None:
    """Why get_file may not read ``path`` (it must stay inside the template's directory)."""
    if "://" in path or path.startswith("file:"):
        return "URLs are not allowed"
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path) or "\\" in path:
        return "absolute paths are not allowed"
    norm = posixpath.normpath(path)
    if norm == ".." or norm.startswith("../"):
        return "the path leaves the template's directory"
    if norm == ".":
        return "the path names a directory, not a file"
    return None


_TEMPLATE_SUFFIXES = (".yaml", ".template")


def _is_template_file(name: str) -> bool:
    """Heat treats a registry target or type ending in .yaml/.template (or a URL) as a
    template resource (a nested stack)."""
    return name.endswith(_TEMPLATE_SUFFIXES) or "://" in name


class _ConditionDefinition(Function):
    name = "condition"


_CONDITION_FN = _ConditionDefinition(())


# --------------------------------------------------------------------------- properties


def _check_property(spec: PropertySpec, value: Any) -> tuple[bool, Any]:
    """(ok, normalised value) for a literal property value; function nodes pass."""
    if isinstance(value, Function) or value is UNKNOWN or spec.type == "any":
        return True, value
    if spec.type == "string":
        if isinstance(value, str):
            return True, value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, str(value)
        return False, value
    if spec.type == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return True, value
        if isinstance(value, str) and INT_RE.match(value.strip()):
            return True, int(value)
        return False, value
    if spec.type == "number":
        num = num_from(value)
        return (num is not None), (num if num is not None else value)
    if spec.type == "boolean":
        flag = bool_from(value) if isinstance(value, (bool, str)) else None
        return (flag is not None), (flag if flag is not None else value)
    if spec.type == "list":
        return isinstance(value, list), value
    if spec.type == "map":
        return isinstance(value, dict), value
    return True, value


def _function_lookalike(value: Any) -> str:
    """A hint when a one-key mapping looks like a misspelt function call."""
    if isinstance(value, Mapping) and len(value) == 1:
        (key,) = value
        best = closest(key, REGISTRY)
        if best is not None and best != key:
            return f" ('{key}' is not a function; did you mean '{best}'?)"
    return ""


# --------------------------------------------------------------------------- resolver


class _Resolver:
    def __init__(self, doc: Document, options: ResolveOptions, cache: ParseCache) -> None:
        self.doc = doc
        self.options = options
        self.cache = cache
        self.residency: Residency | None = None
        self.diags: list[Diagnostic] = []
        data = doc.data if isinstance(doc.data, Mapping) else {}
        self.data = data
        self.declared: dict[str, Mapping[str, Any]] = {
            k: v for k, v in _section(data, "parameters").items()
            if isinstance(k, str) and isinstance(v, Mapping)}
        self.resource_defs: dict[str, Mapping[str, Any]] = {
            k: v for k, v in _section(data, "resources").items()
            if isinstance(k, str) and isinstance(v, Mapping)}
        self.registry = ResourceRegistry()
        self.types: dict[str, tuple[ResourceType, Alias | None] | None] = {}
        self.values: dict[str, Any] = {}
        self.hidden: set[str] = set()
        self.immutable: set[str] = set()
        self.param_locs: dict[str, Loc] = {}
        self.custom: list[CustomConstraint] = []
        self.files: dict[str, str] = {}
        self.version = canonical_version(data.get("heat_template_version")) or LATEST_HOT_VERSION
        # composite resources: name -> "group", "stack" or the template file it is
        self.composite_kind: dict[str, str] = {}
        self.requests: dict[str, Request] = {}
        self.member_composites: dict[str, Composite] = {}  # group members that are stacks

    def parse(self, value: Any, path: Path, condition: bool = False) -> Any:
        """A parsed tree for the template's HOT version (diagnostics collected)."""
        tree = parse_tree(value, path, self.doc, self.diags, version=self.version,
                          condition=condition)
        if not self.options.deferred:
            return tree

        def defer(node: Function) -> Any:
            if isinstance(node, GetParam) and node.param_name in self.options.deferred:
                outer = Outer((), node.loc, tree=self.options.deferred[node.param_name])
                return Select((outer, *node.args[1:]), node.loc) if node.args[1:] else outer
            return node

        return rewrite(tree, defer)

    def feature(self, what: str, since: str, loc: Loc) -> None:
        """Report a template feature the declared heat_template_version does not have."""
        if self.version < since:
            self.add("feature-not-available",
                     f"{what} needs heat_template_version {version_label(since)} or later "
                     f"(this template declares {version_label(self.version)})", loc,
                     f"declare heat_template_version: {since} (or later, e.g. "
                     f"{LATEST_HOT_VERSION})")

    def add(self, code: str, message: str, loc: Loc, hint: str = "") -> None:
        self.diags.append(Diagnostic(code, message, loc, hint))

    # -- environments and parameters
    def merge_environments(self) -> tuple[dict[str, tuple[Any, Loc]], dict[str, tuple[Any, Loc]]]:
        """Merge the environments in order (Heat's environment merging): values by each
        file's parameter_merge_strategies, the resource_registry, later files winning."""
        given: dict[str, tuple[Any, Loc]] = {}
        defaults: dict[str, tuple[Any, Loc]] = {}
        strategies: dict[str, str] = {}
        types: dict[str, RegistryEntry] = {}
        per_resource: dict[str, dict[str, RegistryEntry]] = {}
        for env in self.options.environments:
            self.diags.extend(validate_environment(env))
            edata = env.data if isinstance(env.data, Mapping) else {}
            chosen = {k: v for k, v in _section(edata, "parameter_merge_strategies").items()
                      if v in MERGE_STRATEGIES}
            for section, values in (("parameters", given), ("parameter_defaults", defaults)):
                merging = bool(values)  # as in Heat, the first values are never merged
                for name, value in _section(edata, section).items():
                    path: Path = (section, name)
                    if name not in self.declared:
                        if section == "parameters":
                            self.add("unknown-parameter",
                                     f"the environment sets parameter '{name}', which the "
                                     "template does not declare", env.key_loc(path),
                                     did_you_mean(name, self.declared, "parameters")
                                     or "use parameter_defaults for values shared by several "
                                     "templates")
                        continue
                    if value is not None:
                        self.merge_value(env, name, value, path, values,
                                         chosen.get(name, chosen.get("default", "overwrite")),
                                         strategies if merging else None)
            self.read_registry(env, _section(edata, "resource_registry"), types, per_resource)
        self.registry = self.options.registry or ResourceRegistry(types, per_resource)
        return given, defaults

    def merge_value(self, env: Document, name: str, value: Any, path: Path,
                    values: dict[str, tuple[Any, Loc]], strategy: str,
                    strategies: dict[str, str] | None) -> None:
        loc = env.loc(path)
        if strategies is not None:
            earlier = strategies.setdefault(name, strategy)
            if earlier != strategy:
                where = ("parameter_merge_strategies", name)
                self.add("merge-strategy-conflict",
                         f"parameter '{name}': merge strategy '{strategy}' conflicts with "
                         f"'{earlier}' from an earlier environment",
                         env.key_loc(where) if env.get(where) else loc,
                         "give a parameter the same merge strategy in every environment")
                return
        if strategy == "overwrite" or name not in values:
            values[name] = (value, loc)
            return
        ptype = self.declared[name].get("type")
        merged, problem = merge_parameter(ptype, values[name][0], value,
                                           deep=strategy == "deep_merge")
        if problem is not None:
            self.add("invalid-merge-strategy", f"parameter '{name}' ({ptype}): {problem}", loc,
                     f"use 'overwrite' for '{name}' in parameter_merge_strategies")
            return
        values[name] = (merged, loc)

    def read_registry(self, env: Document, registry: Mapping[Any, Any],
                      types: dict[str, RegistryEntry],
                      per_resource: dict[str, dict[str, RegistryEntry]]) -> None:
        def entry(name: str, target: str, path: Path) -> RegistryEntry:
            return RegistryEntry(name, target, env.loc(path), _is_template_file(target))

        for name, target in registry.items():
            if name == "resources" and isinstance(target, Mapping):
                for rname, entries in target.items():
                    for tname, value in (entries.items() if isinstance(entries, Mapping)
                                         else ()):
                        if tname not in ("hooks", "restricted_actions") and \
                                isinstance(value, str):
                            per_resource.setdefault(str(rname), {})[str(tname)] = entry(
                                str(tname), value,
                                ("resource_registry", "resources", rname, tname))
            elif isinstance(name, str) and isinstance(target, str):
                types[name] = entry(name, target, ("resource_registry", name))

    def resolve_parameters(self) -> None:
        given, defaults = self.merge_environments()
        for name, (value, loc) in self.options.parent_values.items():
            given[name] = (value, loc)
        for name in self.options.deferred:
            self.values[name] = UNKNOWN  # known after apply: the parent's resource values
        for name, value in self.options.params.items():
            if name not in self.declared:
                hint = did_you_mean(name, self.declared, "parameters") or (
                    "the template declares no parameters")
                self.add("unknown-parameter",
                         f"-p {name}: the template declares no parameter '{name}'", NOWHERE, hint)
                continue
            given[name] = (value, Loc(f"<command line: -p {name}>"))
        for name, pdef in self.declared.items():
            ppath: Path = ("parameters", name)
            ptype = pdef.get("type")
            self.param_locs[name] = self.doc.key_loc(ppath)
            if pdef.get("hidden") is True:
                self.hidden.add(name)
            if pdef.get("immutable") is True:
                self.immutable.add(name)
            if "tags" in pdef:
                self.feature("parameter 'tags'", "2018-03-02", self.doc.key_loc((*ppath, "tags")))
            if not isinstance(ptype, str):
                continue  # reported by the schema
            constraints = self.constraints(name, ptype, ppath)
            candidates: list[tuple[Any, Loc, str]] = []
            if "default" in pdef and pdef["default"] is not None:
                candidates.append((pdef["default"], self.doc.loc((*ppath, "default")), "default"))
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
                    if name in self.hidden:
                        problem = f"the (hidden) value is not a valid {ptype}"
                    self.add(code, f"parameter '{name}' ({ptype}): {problem}", loc,
                             f"give '{name}' a {'finite ' * (code == 'parameter-value')}"
                             f"{ptype} value")
                    typed = UNKNOWN
                    continue
                self.check_constraints(name, ptype, value, constraints, loc, source)
                typed, typed_loc = value, loc
            if typed is not UNKNOWN:
                self.custom.extend(
                    CustomConstraint(name, str(c["custom_constraint"]), typed, typed_loc,
                                     name in self.hidden)
                    for c in constraints if isinstance(c.get("custom_constraint"), str))
            if not candidates and name in self.options.deferred:
                continue
            if not candidates:
                if self.options.mode == "plan":
                    self.add("missing-parameter", f"parameter '{name}' has no value",
                             self.doc.key_loc(ppath),
                             f"pass -p {name}=VALUE, set it in an environment file (-e) or "
                             "give it a 'default:'")
                continue
            if typed is not UNKNOWN:
                # a hidden value is sensitive, and so is everything computed from it
                self.values[name] = mark(typed) if name in self.hidden else typed

    def constraints(self, name: str, ptype: str, ppath: Path) -> list[Mapping[str, Any]]:
        """The parameter's valid constraints; invalid ones are reported and skipped."""
        raw = self.doc.get((*ppath, "constraints"))
        out = []
        for i, c in enumerate(raw if isinstance(raw, list) else []):
            if not isinstance(c, Mapping):
                continue  # reported by the schema
            cpath: Path = (*ppath, "constraints", i)
            if "modulo" in c:
                self.feature("the modulo constraint", "2017-02-24",
                             self.doc.key_loc((*cpath, "modulo")))
            problem = constraint_definition_problem(c, ptype)
            if problem:
                self.add("invalid-constraint", f"parameter '{name}': {problem}",
                         self.doc.loc(cpath), "fix the constraint")
                continue
            out.append(c)
        return out

    def check_constraints(self, name: str, ptype: str, value: Any,
                          constraints: Sequence[Mapping[str, Any]], loc: Loc, source: str) -> None:
        shown = "******" if name in self.hidden else None
        for c in constraints:
            problem = constraint_problem(ptype, value, c)
            if problem is None:
                continue
            desc = c.get("description")
            if shown is not None:
                problem = "the (hidden) value violates a constraint"
            message = f"parameter '{name}': {desc if isinstance(desc, str) and desc else problem}"
            what = "the default" if source == "default" else "the value"
            rule = to_text({k: v for k, v in c.items() if k != "description"})
            self.add("parameter-constraint", message, loc, f"{what} must satisfy: {rule}")

    # -- conditions
    def parse_conditions(self) -> tuple[dict[str, Any], dict[str, Loc]]:
        trees: dict[str, Any] = {}
        locs: dict[str, Loc] = {}
        if "conditions" in self.data:
            self.feature("the 'conditions' section", "2016-10-14",
                         self.doc.key_loc(("conditions",)))
        for name, definition in _section(self.data, "conditions").items():
            path: Path = ("conditions", name)
            locs[str(name)] = self.doc.key_loc(path)
            tree = self.parse(definition, path, condition=True)
            if isinstance(definition, Mapping) and not isinstance(tree, Function) \
                    and tree is not UNKNOWN:
                self.add("invalid-condition", f"condition '{name}' is not a condition function",
                         self.doc.loc(path), "use equals, not, and, or, or a condition name")
                tree = UNKNOWN
            trees[str(name)] = tree
        return trees, locs

    def check_condition_ref(self, cond: Any, loc: Loc, conditions: Mapping[str, Any]) -> None:
        if isinstance(cond, str) and cond not in conditions:
            self.add("unknown-condition", f"unknown condition '{cond}'", loc,
                     did_you_mean(cond, conditions, "conditions")
                     or "declare it under 'conditions:'")

    # -- static checks on a parsed tree
    def check_tree(self, tree: Any, conditions: Mapping[str, Any]) -> None:
        for node in walk(tree):
            if isinstance(node, GetParam):
                pname = node.param_name
                if pname not in self.declared and pname not in PSEUDO_PARAMETERS:
                    self.add("unknown-parameter", f"get_param: unknown parameter '{pname}'",
                             node.loc, did_you_mean(pname, self.declared, "parameters")
                             or "declare it under 'parameters:'")
            elif isinstance(node, (GetResource, GetAttr)):
                target = node.resource
                if target not in self.resource_defs:
                    self.add("unknown-resource", f"{node.name}: unknown resource '{target}'",
                             node.loc, did_you_mean(target, self.resource_defs, "resources")
                             or "declare it under 'resources:'")
                elif isinstance(node, GetAttr) and node.attribute is None:
                    self.add("function-unsupported",
                             f"get_attr: all attributes of '{target}' ({{get_attr: "
                             f"[{target}]}}) are not supported yet", node.loc,
                             "name the attribute: {get_attr: [resource, attribute]}")
                elif isinstance(node, GetAttr):
                    self.check_attribute(node)
            elif isinstance(node, (If, Not, And)):
                for arg in node.args[:1] if isinstance(node, If) else node.args:
                    self.check_condition_ref(arg, node.loc, conditions)

    def check_attribute(self, node: GetAttr) -> None:
        found = self.types.get(node.resource)
        if found is None:
            return
        rtype, alias = found
        names = set(rtype.attributes) | (set(alias.attributes) if alias else set())
        if node.attribute not in names and not rtype.open_attributes:
            type_name = alias.name if alias else rtype.kind
            self.add("unknown-attribute",
                     f"get_attr: {type_name} resource '{node.resource}' has no attribute "
                     f"'{node.attribute}'", node.loc,
                     did_you_mean(node.attribute, names, "attributes") or
                     f"{type_name} has no attributes")

    def native_attrs(self, tree: Any) -> Any:
        """Rename alias attribute names in get_attr nodes to native names."""
        if isinstance(tree, Function):
            node = tree.with_args(tuple(self.native_attrs(a) for a in tree.args))
            if isinstance(node, GetAttr):
                found = self.types.get(node.resource)
                alias = found[1] if found else None
                if alias is not None and node.attribute is not None \
                        and node.attribute in alias.attributes:
                    node = node.with_attribute(alias.attributes[node.attribute])
            return node
        if isinstance(tree, Mapping):
            return {k: self.native_attrs(v) for k, v in tree.items()}
        if isinstance(tree, list):
            return [self.native_attrs(v) for v in tree]
        return tree

    def evaluate(self, tree: Any, ctx: _StackContext) -> Any:
        try:
            return partial_evaluate(tree, ctx)
        except DiagnosticError as exc:
            self.diags.extend(exc.diagnostics)
            return UNKNOWN

    def condition_of(self, definition: Mapping[str, Any], path: Path, ctx: _StackContext,
                     conditions: Mapping[str, Any]) -> Any:
        """True/False/UNKNOWN for a resource's or output's ``condition:``."""
        if "condition" not in definition:
            return True
        cpath: Path = (*path, "condition")
        self.feature("'condition'", "2016-10-14", self.doc.key_loc(cpath))
        raw = definition["condition"]
        cond = self.parse(raw, cpath, condition=True)
        if isinstance(raw, Mapping) and not isinstance(cond, Function):
            if cond is not UNKNOWN:
                self.add("invalid-condition", "'condition' is not a condition function",
                         self.doc.loc(cpath), "use a condition name, true/false or equals, "
                         "not, and, or")
            return UNKNOWN
        if not isinstance(cond, (str, bool, Function)):
            return UNKNOWN
        self.check_condition_ref(cond, self.doc.loc(cpath), conditions)
        self.check_tree(cond, conditions)
        try:
            return condition_value(_CONDITION_FN, cond, ctx)
        except DiagnosticError as exc:
            self.diags.extend(exc.diagnostics)
            return UNKNOWN

    # -- resources
    def lookup_types(self) -> None:
        for name, rdef in self.resource_defs.items():
            tname = rdef.get("type")
            if not isinstance(tname, str):
                self.types[name] = None
                continue
            loc = self.doc.loc(("resources", name, "type"))
            entry = self.registry.lookup(name, tname)
            nested = entry.target if entry is not None and entry.is_template else \
                tname if _is_template_file(tname) else None
            if nested is not None or tname in GROUP_TYPES or tname == STACK_TYPE:
                self.types[name] = None
                self.composite_kind[name] = (
                    "group" if tname in GROUP_TYPES else "stack" if tname == STACK_TYPE
                    else str(nested))
                continue
            mapped = entry.mapped(tname) if entry is not None else tname
            found = lookup(mapped)
            self.types[name] = found
            if found is None:
                if mapped != tname:
                    self.add("unknown-resource-type",
                             f"resource '{name}': type '{tname}' is mapped by the environment to "
                             f"'{mapped}', which is not a known type", loc,
                             "map it to a known type, or to a template file (a nested stack)")
                else:
                    self.add("unknown-resource-type",
                             f"resource '{name}': unknown resource type '{tname}'", loc,
                             did_you_mean(tname, known_type_names(), "types"))

    def resolve_resource(self, name: str, rdef: Mapping[str, Any], ctx: _StackContext,
                         conditions: Mapping[str, Any], rpath: Path | None = None
                         ) -> tuple[Any, set[str]] | None:
        """Partially evaluated native properties and explicit depends_on, or None if dropped."""
        rpath = rpath or ("resources", name)
        if self.condition_of(rdef, rpath, ctx, conditions) is False:
            return None
        ppath: Path = (*rpath, "properties")
        raw_props = rdef.get("properties")
        if raw_props is not None and not isinstance(raw_props, Mapping):
            self.add("invalid-type", f"resource '{name}': properties must be a mapping of "
                     f"property values, not {describe(raw_props)}", self.doc.loc(ppath),
                     "write each property under 'properties:' (a function cannot produce them)")
        raw_props = raw_props if isinstance(raw_props, Mapping) else {}
        if self.composite_kind.get(name) == "stack":
            # the nested template is the nested stack's own scope: not parsed here
            raw_props = {k: v for k, v in raw_props.items() if k != "template"}
        tree = self.parse(raw_props, ppath)
        if not isinstance(tree, Mapping):  # e.g. properties: {get_param: p}
            self.add("invalid-type", f"resource '{name}': properties must be a mapping of "
                     "property values, not a function call", self.doc.loc(ppath),
                     "write each property under 'properties:' (a function cannot produce "
                     "them all)")
            tree = {}
        self.check_tree(tree, conditions)
        tree = self.native_attrs(tree)
        found = self.types.get(name)
        props: dict[str, Any] = {}
        for pname, ptree in tree.items():
            value = self.evaluate(ptree, ctx)
            if value is OMIT:
                continue  # a two-argument if whose condition is false: not given
            limits.check_value(value, self.doc.loc((*ppath, pname)),
                               f"resource '{name}': property '{pname}'")
            if found is None:
                props[str(pname)] = value
                continue
            rtype, alias = found
            if alias is not None and pname in alias.ignored:
                continue  # a Heat property with no effect here (see Alias.ignored)
            native = alias.properties.get(pname, pname) if alias else pname
            spec = rtype.properties.get(native)
            if spec is None and rtype.open_properties:
                continue  # accepted and ignored (OS::Heat::None, TestResource)
            if spec is None:
                allowed = set(rtype.properties) | (set(alias.properties) if alias else set())
                self.add("unknown-property",
                         f"resource '{name}': unknown property '{pname}' for "
                         f"{rdef.get('type')}", self.doc.key_loc((*ppath, pname)),
                         did_you_mean(pname, allowed, "properties"))
                continue
            if value is None:
                continue  # an empty value means "not given", as in Heat
            ok, checked = _check_property(spec, value)
            value = carry(value, checked)  # "5" for 5: as sensitive as the value was
            if not ok:
                self.add("property-type",
                         f"resource '{name}': property '{pname}' must be {_SPEC_NAMES[spec.type]}"
                         f", not {describe(value)}", self.doc.loc((*ppath, pname)),
                         f"write {_SPEC_NAMES[spec.type]} here{_function_lookalike(value)}")
            props[native] = value
        if found is not None and found[0].kind in DEPLOY_KINDS \
                and isinstance(props.get("ssh"), Mapping):
            self.check_ssh(props["ssh"], (*ppath, "ssh"), f"resource '{name}': ssh")
        if found is not None:
            rtype, alias = found
            reverse = {v: k for k, v in alias.properties.items()} if alias else {}
            for pname, spec in rtype.properties.items():
                if spec.required and pname not in props:
                    written = reverse.get(pname, pname)
                    self.add("missing-property",
                             f"resource '{name}': required property '{written}' is missing",
                             self.doc.key_loc(ppath if "properties" in rdef else rpath),
                             f"add '{written}:' under properties ({spec.description or spec.type})")
        explicit: set[str] = set()
        deps = rdef.get("depends_on")
        items = [deps] if isinstance(deps, str) else deps if isinstance(deps, list) else []
        for i, dep in enumerate(items):
            if not isinstance(dep, str):
                continue
            dpath: Path = (*rpath, "depends_on") if isinstance(deps, str) else \
                (*rpath, "depends_on", i)
            if dep not in self.resource_defs:
                self.add("unknown-resource", f"resource '{name}' depends on unknown resource "
                         f"'{dep}'", self.doc.loc(dpath),
                         did_you_mean(dep, self.resource_defs, "resources"))
            else:
                explicit.add(dep)
        return props, explicit

    def check_dropped_refs(self, owner: str, tree: Any, dropped: set[str]) -> None:
        for node in walk(tree):
            if isinstance(node, (GetResource, GetAttr)) and node.resource in dropped:
                self.add("unknown-resource",
                         f"{owner} references resource '{node.resource}', which its condition "
                         "excludes", node.loc,
                         "give the reference the same condition, or wrap it in "
                         "{if: [condition, ..., ...]}")

    def rule(self, path: Path, source: str) -> Rule | None:
        ext = self.doc.get(path)
        if not isinstance(ext, Mapping):
            return None

        def text(key: str) -> str | None:
            value = ext.get(key)
            return str(value) if isinstance(value, (str, int)) and value != "" else None

        country, jurisdiction = text("country"), text("jurisdiction")
        if not any(text(k) for k in ("provider", "region", "country", "jurisdiction")) \
                and ext.get("pinned") is not True:
            return None  # e.g. only a group's spread: no rule of its own
        return Rule(source=source, loc=self.doc.key_loc(path), provider=text("provider"),
                    region=text("region"), country=country.upper() if country else None,
                    jurisdiction=jurisdiction.upper() if jurisdiction else None,
                    pinned=ext.get("pinned") is True)

    def stack_residency(self) -> Residency | None:
        raw = self.doc.get(("placement", "residency"))
        if not isinstance(raw, Mapping):
            return None

        def codes(key: str) -> frozenset[str]:
            items = raw.get(key)
            items = items if isinstance(items, list) else [items] if items else []
            return frozenset(str(i).upper() if key != "regions" else str(i) for i in items)

        return Residency(loc=self.doc.key_loc(("placement", "residency")),
                         countries=codes("countries"),
                         jurisdictions=codes("jurisdictions"), regions=codes("regions"))

    def request(self, address: str, rpath: Path, props: Any,
                inherited: tuple[Rule, ...] = ()) -> Request:
        """What the placement solver needs of one resource."""
        own = self.rule((*rpath, "placement"), f"resource '{address}' placement")
        return Request(
            address=address,
            loc=self.doc.key_loc(rpath),
            rules=(*inherited, *((own,) if own else ())),
            links=frozenset(n.resource for n in walk(props) if isinstance(n, GetResource)),
        )

    # -- composites: groups and nested stacks (see cloudtmpl.compose)
    def expand(self, name: str, rdef: Mapping[str, Any], props: Mapping[str, Any],
               explicit: set[str], ctx: _StackContext, conditions: Mapping[str, Any]
               ) -> tuple[dict[str, DesiredResource], Composite]:
        kind = self.composite_kind[name]
        rpath: Path = ("resources", name)
        inherited = tuple(r for r in [self.rule((*rpath, "placement"),
                                                f"resource '{name}' placement")] if r)
        if kind == "group":
            return self.expand_group(name, rdef, props, explicit, ctx, conditions, inherited)
        if kind == "stack":
            raw = self.doc.get((*rpath, "properties", "template"))
            context = props.get("context")
            region = context.get("region_name") if isinstance(context, Mapping) else None
            if isinstance(region, str):
                inherited = (*inherited, Rule(f"resource '{name}' context.region_name",
                                              self.doc.loc((*rpath, "properties", "context")),
                                              region=region))
            params = props.get("parameters")
            return self.expand_stack(name, raw, None, params if isinstance(params, Mapping)
                                     else {}, explicit, inherited, rpath)
        return self.expand_stack(name, None, kind, props, explicit, inherited, rpath)

    def expand_group(self, name: str, rdef: Mapping[str, Any], props: Mapping[str, Any],
                     explicit: set[str], ctx: _StackContext, conditions: Mapping[str, Any],
                     inherited: tuple[Rule, ...]
                     ) -> tuple[dict[str, DesiredResource], Composite]:
        rpath: Path = ("resources", name)
        ppath: Path = (*rpath, "properties")
        empty = Composite(name, "group", ref=f"{self.options.stack}.{name}")
        for key in props:
            if key not in _GROUP_PROPERTIES:
                self.add("unknown-property", f"resource '{name}': unknown property '{key}' for "
                         f"{rdef.get('type')}", self.doc.key_loc((*ppath, key)),
                         did_you_mean(str(key), _GROUP_PROPERTIES, "properties"))
        count = props.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            self.add("group-count", f"resource '{name}': count must be a known whole number "
                     f"of 0 or more, not {describe(count)}", self.doc.loc((*ppath, "count")),
                     "use a number or {get_param: a_number_parameter}")
            return {}, empty
        raw_def = self.doc.get((*ppath, "resource_def"))
        if not isinstance(raw_def, Mapping) or not isinstance(raw_def.get("type"), str):
            self.add("missing-property", f"resource '{name}': resource_def with a 'type' is "
                     "required", self.doc.key_loc(ppath if "properties" in rdef else rpath),
                     "resource_def: {type: Cloud::Compute::Server, properties: {...}}")
            return {}, empty
        var = props.get("index_var", DEFAULT_INDEX_VAR)
        var = var if isinstance(var, str) and var else DEFAULT_INDEX_VAR
        policies = props.get("removal_policies") or []
        lists = [p.get("resource_list") for p in policies if isinstance(p, Mapping)] \
            if isinstance(policies, list) else None
        if lists is None or not all(isinstance(m, list) for m in lists if m is not None):
            self.add("invalid-value", f"resource '{name}': removal_policies must be a list of "
                     "{resource_list: [member names]}", self.doc.loc((*ppath, "removal_policies")),
                     "e.g. removal_policies: [{resource_list: ['1', '3']}]")
            lists = []
        removed = {str(m) for members in lists if isinstance(members, list) for m in members}
        where, what = self.doc.loc((*ppath, "count")), f"resource '{name}': count {count}"
        limits.expect_resources(count, where, what)  # before any member is made
        limits.charge_nodes(count * limits.count_nodes(raw_def, limits.remaining_nodes()),
                            where, what)
        spread = self.spread(name)
        indexes = member_indexes(count, removed)
        members: dict[str, DesiredResource] = {}
        addresses: list[str] = []
        member_rpath: Path = (*ppath, "resource_def")
        policy = rdef.get("update_policy")
        policy = self.evaluate(self.parse(dict(policy), (*rpath, "update_policy")), ctx) \
            if isinstance(policy, Mapping) else {}
        policy = dict(policy) if isinstance(policy, Mapping) and not dependencies(policy) \
            else {}
        for k, index in enumerate(indexes):
            member = f"{name}.{index}"
            mdef = substitute_index(raw_def, var, index)
            rules = (*inherited, *((spread[k % len(spread)],) if spread else ()))
            flat = self.member(member, mdef, member_rpath, explicit, ctx, conditions, rules)
            members.update({a: replace(r, group=name, index=index, update_policy=policy)
                            for a, r in flat.items()})
            addresses.append(member)
        comp = Composite(name, "group", members=tuple(addresses), indexes=tuple(indexes),
                         addresses=frozenset(members), ref=empty.ref)
        return members, comp

    def spread(self, name: str) -> list[Rule]:
        path: Path = ("resources", name, "placement", "spread")
        raw = self.doc.get(path)
        if raw is None:
            return []
        items = raw if isinstance(raw, list) else []
        if len(items) < 2 or not all(isinstance(i, str) and i for i in items):
            self.add("spread-too-small", f"resource '{name}': spread needs a list of at least "
                     "two placements", self.doc.loc(path),
                     "spread: [target/region, target/region] (members go round-robin)")
            return []
        out = []
        for item in items:
            target, _, region = item.partition("/")
            out.append(Rule(f"group '{name}' spread ({item})", self.doc.loc(path),
                            provider=target or None, region=region or None))
        return out

    def member(self, member: str, mdef: Mapping[str, Any], rpath: Path, explicit: set[str],
               ctx: _StackContext, conditions: Mapping[str, Any], rules: tuple[Rule, ...]
               ) -> dict[str, DesiredResource]:
        """One group member: a plain resource, or a nested stack of its own."""
        tname = str(mdef.get("type"))
        entry = self.registry.lookup(member, tname)
        nested = entry.target if entry is not None and entry.is_template else \
            tname if _is_template_file(tname) else None
        if nested is not None:
            props = self.resolve_resource(member, {**mdef, "type": tname}, ctx, conditions,
                                          rpath)
            if props is None:
                return {}
            self.composite_kind[member] = nested
            flat, comp = self.expand_stack(member, None, nested, props[0], explicit, rules,
                                           rpath)
            self.member_composites[member] = comp
            return flat
        mapped = entry.mapped(tname) if entry is not None else tname
        self.types[member] = lookup(mapped)
        if self.types[member] is None:
            self.add("unknown-resource-type", f"resource '{member}': unknown resource type "
                     f"'{tname}'", self.doc.loc((*rpath, "type")),
                     did_you_mean(tname, known_type_names(), "types"))
            return {}
        result = self.resolve_resource(member, mdef, ctx, conditions, rpath)
        if result is None:
            return {}
        props, _ = result
        props = self.native_attrs(props)
        found = self.types[member]
        assert found is not None
        limits.charge_resources(1, self.doc.key_loc(rpath), f"group member '{member}'")
        self.requests[member] = replace(self.request(member, rpath, props, rules),
                                        address=member)
        return {member: DesiredResource(
            address=member, type=tname, kind=found[0].kind, properties=props,
            depends_on=frozenset(explicit | dependencies(props)),
            placement=Placement("", ""), loc=self.doc.key_loc(rpath))}

    def expand_stack(self, name: str, inline: Any, path: str | None, props: Mapping[str, Any],
                     explicit: set[str], inherited: tuple[Rule, ...], rpath: Path
                     ) -> tuple[dict[str, DesiredResource], Composite]:
        """A nested template resolved on its own, then grafted in under ``<name>.``."""
        empty = Composite(name, "stack", prefix=f"{name}.", ref=f"{self.options.stack}.{name}")
        loc = self.doc.loc((*rpath, "type"))
        doc = self.nested_doc(name, inline, path, loc)
        if doc is None:
            return {}, empty
        data = doc.data if isinstance(doc.data, Mapping) else {}
        declared = _section(data, "parameters")
        given: dict[str, tuple[Any, Loc]] = {}
        deferred: dict[str, Any] = {}
        for key, value in props.items():
            ploc = self.doc.loc((*rpath, "properties", key))
            if key not in declared:
                self.add("unknown-property", f"resource '{name}': the nested template "
                         f"{doc.file} has no parameter '{key}'", self.doc.key_loc(
                             (*rpath, "properties", key)),
                         did_you_mean(str(key), list(declared), "parameters")
                         or "its parameters are the properties a template resource takes")
            elif dependencies(value):
                deferred[str(key)] = value
            elif value is not UNKNOWN:
                given[str(key)] = (value, ploc)
        base = posixpath.dirname(path) if path else ""
        parent_read = self.options.read_file
        nested_read = (lambda rel: parent_read(posixpath.normpath(posixpath.join(base, rel)))) \
            if parent_read is not None else None
        options = replace(self.options, nested=True, parent_values=given, deferred=deferred,
                          registry=self.registry, environments=(), params={},
                          read_file=nested_read)
        limits.charge_nodes(self.cache.nodes(doc), loc,
                            f"resource '{name}': nested template {doc.file}")
        try:
            with limits.nested(doc.file, loc):
                inner = _Resolver(doc, options, self.cache).run()
        except DiagnosticError as exc:
            self.diags.extend(exc.diagnostics)
            return {}, empty
        for rel, text in inner.files.items():
            self.files[posixpath.normpath(posixpath.join(base, rel))] = text
        prefix = f"{name}."
        names = frozenset(inner.resources)
        parent_res = self.residency or self.stack_residency()
        if inner.residency is not None and parent_res is not None and any(
                inner.residency.allows(c) and not parent_res.allows(c)
                for c in candidates(self.options.targets)):
            self.add("residency-widened", f"resource '{name}': the nested template "
                     f"{doc.file} allows more than its parent: {inner.residency.text()} is not "
                     f"within {parent_res.text()}", inner.residency.loc,
                     "a nested template may only narrow its parent's residency")
        flat: dict[str, DesiredResource] = {}
        for address, res in inner.resources.items():
            props_tree = graft_tree(dict(res.properties), prefix, names)
            deps = {prefix + d for d in res.depends_on if d in names} | explicit
            deps |= {d for d in dependencies(props_tree) if d not in names and d != OUTER}
            flat[prefix + address] = replace(
                res, address=prefix + address, properties=props_tree,
                depends_on=frozenset(deps))
            q = inner.requests.get(address)
            if q is not None:
                self.requests[prefix + address] = replace(
                    q, address=prefix + address, rules=(*inherited, *q.rules),
                    links=frozenset(prefix + link if link in names else link
                                    for link in q.links),
                    residencies=(*q.residencies,
                                 *((inner.residency,) if inner.residency else ())))
        outputs = {o: graft_tree(out.value, prefix, names) for o, out in inner.outputs.items()}
        ref = outputs.get("OS::stack_id", empty.ref)
        return flat, Composite(name, "stack", outputs=outputs, prefix=prefix,
                               addresses=frozenset(flat), ref=ref)

    def nested_doc(self, name: str, inline: Any, path: str | None, loc: Loc) -> Document | None:
        if path is None:  # OS::Heat::Stack: the template is inline
            if isinstance(inline, str):
                text = inline
            elif isinstance(inline, Mapping):
                text = yaml.safe_dump(dict(inline), sort_keys=False)
            else:
                self.add("missing-property", f"resource '{name}': OS::Heat::Stack needs a "
                         "'template' (a template as a mapping or a string)", loc,
                         "template: {heat_template_version: ..., resources: {...}}")
                return None
            return self.parsed(text, f"{self.doc.file}#{name}")
        try:
            text = self.get_file(path, loc)
        except DiagnosticError as exc:
            self.diags.extend(exc.diagnostics)
            return None
        return self.parsed(text, posixpath.normpath(
            posixpath.join(posixpath.dirname(self.doc.file), path)))

    def parsed(self, text: str, file: str) -> Document | None:
        """A nested template, parsed once per run (documents are never modified)."""
        found = self.cache.document(text, file)
        if isinstance(found, DiagnosticError):
            self.diags.extend(found.diagnostics)
            return None
        return found

    def place_all(self, resources: dict[str, DesiredResource]) -> dict[str, DesiredResource]:
        """Every resource's placement from the residency solver (one pass, co-located)."""
        local = {a for a, r in resources.items() if r.kind in TYPES and TYPES[r.kind].local}
        requests = {a: q for a, q in self.requests.items() if a in resources and a not in local}
        stack_rule = self.rule(("placement",), "stack placement")
        residency = self.residency = self.stack_residency()
        solution = solve(requests, stack_rule=stack_rule, residency=residency,
                         options=self.options, require_target=self.options.mode == "plan")
        self.diags.extend(solution.diagnostics)
        return {
            name: replace(res, placement=solution.placements.get(name, Placement("", "")),
                          why=solution.why.get(name, ""), pinned=name in solution.pinned)
            if name not in local else replace(
                res, placement=Placement(LOCAL_TARGET, LOCAL_TARGET),
                why="computed by cloudtmpl itself: no cloud")
            for name, res in resources.items()
        }

    def lifecycle(self, name: str, rdef: Mapping[str, Any], ctx: _StackContext
                  ) -> dict[str, Any]:
        """The resource's lifecycle hooks, evaluated (they may use parameters, not other
        resources: the server's own address and key are found when the hook runs)."""
        raw = rdef.get("lifecycle")
        if not isinstance(raw, Mapping):
            return {}
        path: Path = ("resources", name, "lifecycle")
        value = self.evaluate(self.parse(dict(raw), path), ctx)
        if dependencies(value) or is_unknown(value):
            self.add("lifecycle-reference", f"resource '{name}': lifecycle hooks cannot refer "
                     "to other resources", self.doc.key_loc(path),
                     "the hook runs on this server, whose address and key are known; use "
                     "parameters or literal values")
            return {}
        found = self.types.get(name)
        kind = found[0].kind if found else ""
        if value.get("create_before_destroy") and kind not in _CREATE_FIRST:
            self.add("lifecycle-create-first", f"resource '{name}': create_before_destroy "
                     f"needs a resource the cloud tells apart by tags, not by name ({kind})",
                     self.doc.loc((*path, "create_before_destroy")),
                     "it works for " + ", ".join(sorted(_CREATE_FIRST)))
        for which in ("pre_delete", "pre_replace"):
            hook = value.get(which)
            if isinstance(hook, Mapping) and hook.get("on_failure", "abort") not in (
                    "abort", "continue"):
                self.add("invalid-value", f"resource '{name}': {which}.on_failure must be "
                         f"abort or continue, not {describe(hook.get('on_failure'))}",
                         self.doc.loc((*path, which, "on_failure")),
                         "abort keeps the server when the hook fails; continue removes it anyway")
            if isinstance(hook, Mapping) and not isinstance(hook.get("script"), str):
                self.add("invalid-type", f"resource '{name}': {which}.script must be a string",
                         self.doc.loc((*path, which, "script")), "a shell script run on the server")
            if isinstance(hook, Mapping) and isinstance(hook.get("ssh"), Mapping):
                self.check_ssh(hook["ssh"], (*path, which, "ssh"),
                               f"resource '{name}': {which}.ssh")
            elif isinstance(hook, Mapping) and hook.get("ssh") is not None:
                self.add("invalid-type", f"resource '{name}': {which}.ssh must be a mapping of "
                         f"SSH settings, not {describe(hook['ssh'])}",
                         self.doc.loc((*path, which, "ssh")),
                         "e.g. ssh: {user: ubuntu, key_pair: mystack.key, via: private}")
        if (value.get("pre_delete") or value.get("pre_replace")) and \
                kind != "Cloud::Compute::Server":
            self.add("lifecycle-hook-kind", f"resource '{name}': pre_delete/pre_replace hooks "
                     "run on a server over SSH", self.doc.key_loc(path),
                     "put the hook on the server resource")
        return dict(value)

    def stack_ssh(self, ctx: _StackContext) -> dict[str, Any]:
        """The template's top-level ``ssh:`` (the stack's default SSH settings), evaluated:
        parameters are fine, other resources are not (the defaults reach lifecycle hooks,
        which run when those resources may be gone)."""
        raw = self.data.get("ssh")
        if not isinstance(raw, Mapping):
            return {}  # not a mapping: reported by the schema
        path: Path = ("ssh",)
        value = self.evaluate(self.parse(dict(raw), path), ctx)
        if not isinstance(value, Mapping):
            return {}
        out: dict[str, Any] = {}
        for key, item in value.items():
            if dependencies(item):
                self.add("ssh-reference", f"the stack's ssh.{key} refers to a resource, which "
                         "the stack's SSH defaults cannot (they reach lifecycle hooks too)",
                         self.doc.loc((*path, key)),
                         "use a literal value or a parameter (a key pair cloudtmpl generated "
                         f"is named <stack>.<resource>, e.g. {self.options.stack}.key); or set "
                         "it in the deployment's own ssh property")
            elif is_unknown(item):
                if self.options.mode == "plan":
                    self.add("ssh-reference", f"the stack's ssh.{key} is not known before "
                             "apply", self.doc.loc((*path, key)),
                             "use a literal value or a parameter")
            elif item is not None and item is not OMIT:
                out[str(key)] = item
        self.check_ssh(out, path, "ssh", known_keys=False)
        return out

    def check_ssh(self, settings: Mapping[str, Any], path: Path, owner: str,
                  known_keys: bool = True) -> None:
        """Diagnostics for the literal values of an SSH settings map (values still
        unknown, or function calls, are checked when they run)."""
        for key, code, message, hint in ssh_problems(settings, check_keys=known_keys):
            where = self.doc.key_loc((*path, key)) if code == "unknown-key" \
                else self.doc.loc((*path, key))
            self.add(code, f"{owner}.{key}: {message}" if code != "unknown-key"
                     else f"{owner}: {message}", where, hint)

    def check_parameter_groups(self) -> None:
        groups = self.data.get("parameter_groups")
        if not isinstance(groups, list):
            return
        first: dict[str, Loc] = {}
        for gi, group in enumerate(groups):
            if isinstance(group, Mapping) and "parameters" not in group:
                self.add("missing-key", "a parameter group must list its 'parameters'",
                         self.doc.loc(("parameter_groups", gi)), "add 'parameters: [name, ...]'")
            names = group.get("parameters") if isinstance(group, Mapping) else None
            for i, pname in enumerate(names if isinstance(names, list) else []):
                loc = self.doc.loc(("parameter_groups", gi, "parameters", i))
                if isinstance(pname, str) and pname not in self.declared:
                    self.add("unknown-parameter",
                             f"parameter group lists unknown parameter '{pname}'", loc,
                             did_you_mean(pname, self.declared, "parameters"))
                elif isinstance(pname, str) and pname in first:
                    self.add("duplicate-parameter",
                             f"parameter '{pname}' is listed twice in parameter_groups "
                             f"(first at line {first[pname].line})", loc,
                             "assign each parameter to one parameter group only")
                elif isinstance(pname, str):
                    first[pname] = loc

    def get_file(self, path: str, loc: Loc) -> str:
        """get_file's content: ``path`` must stay inside the template's directory."""
        problem = _file_path_problem(path)
        if problem is not None:
            raise error("file-outside-template", f"get_file: '{path}': {problem}", loc,
                        "get_file reads files in the template's directory tree; give a "
                        "relative path such as scripts/boot.sh")
        key = posixpath.normpath(path)
        if key in self.files:
            return self.files[key]
        hint = "the path is relative to the template's directory"
        if self.options.read_file is None:
            raise error("file-not-found", f"get_file: cannot read '{path}': no files can be "
                        "read here", loc, hint)
        try:
            text = self.options.read_file(key)
        except limits.FileRefused as exc:
            raise exc.diagnostic(loc, f"get_file: cannot read '{path}'") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise error("file-not-found", f"get_file: cannot read '{path}': {reason}", loc,
                        hint) from None
        self.files[key] = text
        return text

    def check_deletion_policies(self) -> None:
        for name, rdef in self.resource_defs.items():
            policy = rdef.get("deletion_policy")
            if isinstance(policy, str) and policy.islower():
                self.feature(f"the lowercase deletion_policy '{policy}'", "2016-10-14",
                             self.doc.loc(("resources", name, "deletion_policy")))
            if isinstance(policy, str) and policy.capitalize() == "Snapshot":
                self.check_snapshot_policy(name, rdef)

    def check_snapshot_policy(self, name: str, rdef: Mapping[str, Any]) -> None:
        """Snapshot only where the type supports it (Heat: '"Snapshot" deletion policy
        not supported'); a server is accepted (Heat saves an image of it) and kept."""
        found = self.types.get(name)
        if found is None and name not in self.composite_kind:
            return  # an unknown type: reported already
        if found is not None and found[0].on_snapshot != "refuse":
            return
        what = str(rdef.get("type"))
        self.add("deletion-policy-unsupported",
                 f"resource '{name}': deletion_policy Snapshot is not supported for {what} "
                 "(Heat: \"Snapshot\" deletion policy not supported)",
                 self.doc.key_loc(("resources", name, "deletion_policy")),
                 "Snapshot is supported for Cloud::Block::Volume / OS::Cinder::Volume; "
                 "use Retain or Delete")

    def scrubbed(self, diags: Iterable[Diagnostic]) -> list[Diagnostic]:
        """``diags`` with any hidden parameter value replaced (never shown anywhere), and
        any other sensitive value (a parent stack's, given to a nested template)."""
        secrets = sorted({s for name in self.hidden if name in self.values
                          for s in _secret_texts(self.values[name])} | texts(self.values),
                         key=len, reverse=True)
        if not secrets:
            return list(diags)

        def scrub(text: str) -> str:
            for secret in secrets:
                text = text.replace(secret, "******")
            return text

        return [replace(d, message=scrub(d.message), hint=scrub(d.hint)) for d in diags]

    def run(self) -> ResolvedStack:
        self.diags.extend(self.cache.problems(self.doc))
        self.resolve_parameters()
        self.check_parameter_groups()
        trees, cond_locs = self.parse_conditions()
        ctx_params = dict(self.values)
        ctx_params["OS::stack_name"] = self.options.stack
        ctx = _StackContext(ctx_params, trees, cond_locs, self.diags, self.get_file)
        for cname, tree in trees.items():
            self.check_tree(tree, trees)
            if isinstance(tree, str):
                self.check_condition_ref(tree, self.doc.loc(("conditions", cname)), trees)
            ctx.condition(cname)
        self.lookup_types()
        self.check_deletion_policies()
        self.residency = self.stack_residency()

        kept: dict[str, tuple[Any, set[str]]] = {}
        dropped: set[str] = set()
        for name, rdef in self.resource_defs.items():
            result = self.resolve_resource(name, rdef, ctx, trees)
            if result is None:
                dropped.add(name)
            else:
                kept[name] = result

        resources: dict[str, DesiredResource] = {}
        composites: dict[str, Composite] = {}
        for name, (props, explicit) in kept.items():
            rdef = self.resource_defs[name]
            self.check_dropped_refs(f"resource '{name}'", props, dropped)
            if name in self.composite_kind:
                flat, comp = self.expand(name, rdef, props, explicit - dropped, ctx, trees)
                resources.update(flat)
                composites.update(self.member_composites)
                composites[name] = comp
                continue
            limits.charge_resources(1, self.doc.key_loc(("resources", name)),
                                    f"resource '{name}'")
            self.requests[name] = self.request(name, ("resources", name), props)
            found = self.types.get(name)
            policy = rdef.get("deletion_policy")
            resources[name] = DesiredResource(
                address=name,
                type=str(rdef.get("type")),
                kind=found[0].kind if found else str(rdef.get("type")),
                properties=props,
                depends_on=frozenset((explicit - dropped) | (dependencies(props) - dropped)),
                placement=Placement("", ""),  # chosen for all resources at once below
                loc=self.doc.key_loc(("resources", name)),
                deletion_policy=policy.capitalize() if isinstance(policy, str) else "Delete",
                timeouts=_timeouts(rdef.get("timeouts")),
                lifecycle=self.lifecycle(name, rdef, ctx),
            )

        outputs: dict[str, Output] = {}
        for oname, odef in _section(self.data, "outputs").items():
            if not isinstance(odef, Mapping):
                continue
            opath: Path = ("outputs", oname)
            if self.condition_of(odef, opath, ctx, trees) is False:
                continue
            tree = self.parse(odef.get("value"), (*opath, "value"))
            self.check_tree(tree, trees)
            value = self.evaluate(self.native_attrs(tree), ctx)
            value = None if value is OMIT else value
            limits.check_value(value, self.doc.loc((*opath, "value")), f"output '{oname}'")
            self.check_dropped_refs(f"output '{oname}'", value, dropped)
            desc = odef.get("description")
            outputs[str(oname)] = Output(str(oname), value, desc if isinstance(desc, str) else "",
                                         self.doc.key_loc(opath))

        if composites:
            resources = {
                a: replace(r, properties=resolve_refs(dict(r.properties), composites),
                           depends_on=frozenset(expand_deps(set(r.depends_on), composites)))
                for a, r in resources.items()}
            outputs = {o: replace(out, value=resolve_refs(out.value, composites))
                       for o, out in outputs.items()}
            self.requests = {a: replace(q, links=frozenset(expand_deps(
                set(q.links), composites))) for a, q in self.requests.items()}
        # the stack's SSH defaults under every deployment's and hook's own settings (a
        # nested template's were applied by its own resolve: they win over these)
        resources = with_ssh_defaults(resources, self.stack_ssh(ctx))
        if not self.options.nested:
            self.diags.extend(address_problems(resources))
            resources = self.place_all(resources)
            self.diags.extend(cycle_diagnostics(resources))
        if any(d.severity == "error" for d in self.diags):
            raise DiagnosticError(_sorted(self.scrubbed(self.diags)))
        description = self.data.get("description")
        return ResolvedStack(
            name=self.options.stack,
            description=description if isinstance(description, str) else "",
            resources=resources,
            outputs=outputs,
            parameters=dict(self.values),
            hidden=frozenset(self.hidden),
            template_hash=template_hash(self.doc, self.options.environments),
            params_hash=hashlib.sha256(canonical_json(self.values).encode()).hexdigest(),
            residency=self.residency,
            version=self.version,
            files=dict(self.files),
            custom_constraints=tuple(self.custom),
            immutable=frozenset(self.immutable),
            parameter_locs=dict(self.param_locs),
            registry=self.registry,
            requests=dict(self.requests) if self.options.nested else {},
        )


def _timeouts(raw: Any) -> dict[str, float]:
    """A resource's ``timeouts`` (checked by the schema): {create|delete: seconds}."""
    if not isinstance(raw, Mapping):
        return {}
    return {k: float(v) for k, v in raw.items()
            if k in ("create", "delete") and isinstance(v, (int, float))}


# kinds whose identity is a tag (a second copy under the same name can exist a while)
_CREATE_FIRST = frozenset({"Cloud::Compute::Server", "Cloud::Block::Volume"})

_GROUP_PROPERTIES = ("count", "resource_def", "index_var", "removal_policies",
                     "removal_policies_mode")

_SPEC_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "list": "a list",
    "map": "a mapping",
    "any": "any value",
}


def _secret_texts(value: Any) -> Iterable[str]:
    """The texts a hidden value could appear as in a message (short ones would garble
    messages, and a hidden value is normally a password or key)."""
    texts = [value] if isinstance(value, str) else [to_text(value), json.dumps(value)]
    if isinstance(value, (list, dict)):
        leaves = value.values() if isinstance(value, dict) else value
        texts += [v if isinstance(v, str) else to_text(v) for v in leaves]
    return [t for t in texts if len(t) >= 4]


def _section(data: Mapping[str, Any], key: str) -> Mapping[Any, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def _sorted(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    unique = list(dict.fromkeys(diags))
    return sorted(unique, key=lambda d: (d.loc.file, d.loc.line, d.loc.column))


def template_hash(doc: Document, environments: Sequence[Document] = ()) -> str:
    """sha256 over the template text and the environment texts, in order."""
    digest = hashlib.sha256()
    for text in (doc.text, *(e.text for e in environments)):
        data = text.encode()
        digest.update(f"{len(data)}:".encode())
        digest.update(data)
    return digest.hexdigest()


def resolve(doc: Document, options: ResolveOptions) -> ResolvedStack:
    """Resolve a template; raises DiagnosticError carrying every problem found.

    Within one evaluation budget (:mod:`cloudtmpl.limits`): the first limit crossed
    stops it with that limit's diagnostic."""
    with limits.budget(doc.file):
        return _Resolver(doc, options, ParseCache()).run()
