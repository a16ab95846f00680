"""Composite resources expanded: a group into its members, a nested stack (an
``OS::Heat::Stack`` or a template resource) resolved on its own and grafted in.
The pure rewrites are :mod:`cloudtmpl.compose`; this is the part that needs the
parent template's state, handed in explicitly to a :class:`Composer`."""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from cloudtmpl import heat_types, limits
from cloudtmpl.compose import (
    DEFAULT_INDEX_VAR,
    OUTER,
    Composite,
    graft_tree,
    member_indexes,
    substitute_index,
)
from cloudtmpl.diagnostics import DiagnosticError, Loc
from cloudtmpl.functions import REGISTRY, Context, dependencies
from cloudtmpl.loader import Document, Path
from cloudtmpl.model import UNKNOWN, DesiredResource, Placement
from cloudtmpl.placement import Request, Residency, Rule, candidates
from cloudtmpl.resolve.checks import Types, native_attrs
from cloudtmpl.resolve.files import Files
from cloudtmpl.resolve.placing import request, rule, stack_residency
from cloudtmpl.resolve.scaling_groups import instance_group, scaling_group
from cloudtmpl.resolve.scope import Scope, is_template_file, section
from cloudtmpl.resolve.values import (
    ParseCache,
    ResolvedStack,
    ResolveOptions,
    ResourceRegistry,
    target_candidates,
)
from cloudtmpl.resources import known_type_names, lookup
from cloudtmpl.scaling import ScalingGroup
from cloudtmpl.schema import describe, did_you_mean

GROUP_PROPERTIES = ("count", "resource_def", "index_var", "removal_policies",
                    "removal_policies_mode")

# a resource's properties resolved and its explicit depends_on (None: its condition drops it)
Resolved = tuple[Any, set[str]] | None


@dataclass(frozen=True)
class Expansion:
    """What one composite became: flattened resources, the composite (for rewriting
    references), the placement requests of its members, and the group members that
    are nested stacks themselves."""

    resources: dict[str, DesiredResource]
    composite: Composite
    requests: dict[str, Request] = field(default_factory=dict)
    members: dict[str, Composite] = field(default_factory=dict)
    scaling: ScalingGroup | None = None  # a scaling group's bounds and size


@dataclass(frozen=True)
class Composer:
    """The parent template's state a composite needs.  ``resolve_member`` resolves a
    group member's definition as the parent resolves a resource (name, definition,
    path); ``resolve_nested`` resolves a nested template.  ``types`` is the parent's
    table of types found: a group member's is added to it."""

    scope: Scope
    cache: ParseCache
    registry: ResourceRegistry
    types: Types
    files: Files
    file_root: str  # the root template's directory, as the user named it
    ctx: Context
    residency: Residency | None
    resolve_member: Callable[[str, Mapping[str, Any], Path], Resolved]
    resolve_nested: Callable[[Document, ResolveOptions], ResolvedStack]

    def expand(self, name: str, kind: str, rdef: Mapping[str, Any], props: Mapping[str, Any],
               explicit: set[str]) -> Expansion:
        """A composite of ``kind`` ("group", "stack" or a template file) expanded."""
        out = Expansion({}, Composite(name, "group"))
        rpath: Path = ("resources", name)
        inherited = tuple(r for r in [rule(self.scope, (*rpath, "placement"),
                                           f"resource '{name}' placement")] if r)
        if kind == "group":
            flat, comp = self._group(name, rdef, props, explicit, inherited, out)
        elif kind == "scaling":
            group = scaling_group(self.scope, name, props)
            out = replace(out, scaling=group)
            flat, comp = self._group(name, rdef, props, explicit, inherited, out, group) \
                if group is not None else ({}, Composite(name, "group", scaling=True))
        elif kind == "instances":  # InstanceGroup, AWS::AutoScaling::AutoScalingGroup
            found = instance_group(self.scope, name, str(rdef.get("type")), props)
            out = replace(out, scaling=found[0] if found else None)
            flat, comp = self._group(name, rdef, props, explicit, inherited, out, found[0],
                                     found[1:]) \
                if found is not None else ({}, Composite(name, "group", scaling=True))
        elif kind == "stack":
            tpath: Path = (*rpath, "properties", "template")
            raw = self.scope.doc.get(tpath)
            file = self._template_file(name, raw, tpath)
            if file == "":  # refused
                return out
            context = props.get("context")
            region = context.get("region_name") if isinstance(context, Mapping) else None
            if isinstance(region, str):
                inherited = (*inherited, Rule(f"resource '{name}' context.region_name",
                                              self.scope.doc.loc((*rpath, "properties",
                                                                  "context")),
                                              region=region))
            params = props.get("parameters")
            flat, comp = self._stack(name, None if file else raw, file,
                                     params if isinstance(params, Mapping) else {}, explicit,
                                     inherited, rpath, out,
                                     self.scope.doc.loc(tpath) if file else None)
        else:
            flat, comp = self._stack(name, None, kind, props, explicit, inherited, rpath, out)
        return replace(out, resources=flat, composite=comp)

    def _template_file(self, name: str, raw: Any, tpath: Path) -> str | None:
        """The key of ``template: {get_file: FILE}`` (Heat: the template is the file's
        text), None for an inline template, "" for another function (refused)."""
        if not isinstance(raw, Mapping) or len(raw) != 1:
            return None
        (fname, arg), = raw.items()
        if fname == "get_file" and isinstance(arg, str):
            return self.files.key(arg)
        if fname in REGISTRY or fname == "get_file":
            self.scope.add("invalid-value", f"resource '{name}': OS::Heat::Stack's template "
                           f"must be a template or {{get_file: FILE}}, not {{{fname}: ...}}",
                           self.scope.doc.loc(tpath),
                           "template: {get_file: nested.yaml}, or the template inline")
            return ""
        return None

    def _group(self, name: str, rdef: Mapping[str, Any], props: Mapping[str, Any],
               explicit: set[str], inherited: tuple[Rule, ...], out: Expansion,
               scaling: ScalingGroup | None = None, given: tuple[Any, Path] | None = None
               ) -> tuple[dict[str, DesiredResource], Composite]:
        """A resource group's members; a scaling group's (``scaling``: its size, its
        properties checked) from its ``resource`` (or ``given``: a definition made
        elsewhere, and its path), with no index substitution."""
        rpath: Path = ("resources", name)
        ppath: Path = (*rpath, "properties")
        empty = Composite(name, "group", ref=f"{self.scope.options.stack}.{name}",
                          scaling=scaling is not None)
        for key in props if scaling is None else ():
            if key not in GROUP_PROPERTIES:
                self.scope.add("unknown-property",
                               f"resource '{name}': unknown property '{key}' for "
                               f"{rdef.get('type')}", self.scope.doc.key_loc((*ppath, key)),
                         did_you_mean(str(key), GROUP_PROPERTIES, "properties"))
        count = props.get("count", 1) if scaling is None else scaling.size
        def_key = "resource_def" if scaling is None else "resource"
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            self.scope.add("group-count", f"resource '{name}': count must be a known whole number "
                     f"of 0 or more, not {describe(count)}", self.scope.doc.loc((*ppath, "count")),
                     "use a number or {get_param: a_number_parameter}")
            return {}, empty
        raw_def = self.scope.doc.get((*ppath, def_key)) if given is None else given[0]
        if not isinstance(raw_def, Mapping) or not isinstance(raw_def.get("type"), str):
            self.scope.add("missing-property", f"resource '{name}': {def_key} with a 'type' is "
                     "required", self.scope.doc.key_loc(ppath if "properties" in rdef else rpath),
                     f"{def_key}: {{type: Cloud::Compute::Server, properties: {{...}}}}")
            return {}, empty
        var = props.get("index_var", DEFAULT_INDEX_VAR)
        var = var if isinstance(var, str) and var else DEFAULT_INDEX_VAR
        var = var if scaling is None else ""  # Heat substitutes no index in a scaling group
        policies = props.get("removal_policies") or []
        lists = [p.get("resource_list") for p in policies if isinstance(p, Mapping)] \
            if isinstance(policies, list) else None
        if lists is None or not all(isinstance(m, list) for m in lists if m is not None):
            self.scope.add("invalid-value",
                           f"resource '{name}': removal_policies must be a list of "
                           "{resource_list: [member names]}",
                           self.scope.doc.loc((*ppath, "removal_policies")),
                     "e.g. removal_policies: [{resource_list: ['1', '3']}]")
            lists = []
        removed = {str(m) for members in lists if isinstance(members, list) for m in members}
        where, what = self.scope.doc.loc((*ppath, "count")), f"resource '{name}': count {count}"
        limits.expect_resources(count, where, what)  # before any member is made
        limits.charge_nodes(count * limits.count_nodes(raw_def, limits.remaining_nodes()),
                            where, what)
        spread = self._spread(name)
        indexes = member_indexes(count, removed) if scaling is None else scaling.indexes
        members: dict[str, DesiredResource] = {}
        addresses: list[str] = []
        member_rpath: Path = (*ppath, def_key) if given is None else given[1]
        policy = rdef.get("update_policy") if scaling is None else \
            {"rolling_update": dict(props.get("rolling_updates") or {})}
        policy = self.scope.evaluate(self.scope.parse(dict(policy), (*rpath, "update_policy")),
                                     self.ctx) \
            if isinstance(policy, Mapping) else {}
        policy = dict(policy) if isinstance(policy, Mapping) and not dependencies(policy) \
            else {}
        for k, index in enumerate(indexes):
            member = f"{name}.{index}"
            mdef = substitute_index(raw_def, var, index)
            rules = (*inherited, *((spread[k % len(spread)],) if spread else ()))
            flat = self._member(member, mdef, member_rpath, explicit, rules, out)
            members.update({a: replace(r, group=name, index=index, update_policy=policy)
                            for a, r in flat.items()})
            addresses.append(member)
        comp = Composite(name, "group", members=tuple(addresses), indexes=tuple(indexes),
                         addresses=frozenset(members), ref=empty.ref,
                         scaling=scaling is not None)
        return members, comp

    def _spread(self, name: str) -> list[Rule]:
        path: Path = ("resources", name, "placement", "spread")
        raw = self.scope.doc.get(path)
        if raw is None:
            return []
        items = raw if isinstance(raw, list) else []
        if len(items) < 2 or not all(isinstance(i, str) and i for i in items):
            self.scope.add("spread-too-small",
                           f"resource '{name}': spread needs a list of at least "
                     "two placements", self.scope.doc.loc(path),
                     "spread: [target/region, target/region] (members go round-robin)")
            return []
        out = []
        for item in items:
            target, _, region = item.partition("/")
            out.append(Rule(f"group '{name}' spread ({item})", self.scope.doc.loc(path),
                            provider=target or None, region=region or None))
        return out

    def _member(self, member: str, mdef: Mapping[str, Any], rpath: Path, explicit: set[str],
                rules: tuple[Rule, ...], out: Expansion) -> dict[str, DesiredResource]:
        """One group member: a plain resource, or a nested stack of its own."""
        tname = str(mdef.get("type"))
        entry = self.registry.lookup(member, tname)
        nested = entry.target if entry is not None and entry.is_template else \
            self.files.key(tname) if is_template_file(tname) else None
        if nested is not None:
            props = self.resolve_member(member, {**mdef, "type": tname}, rpath)
            if props is None:
                return {}
            flat, comp = self._stack(member, None, nested, props[0], explicit, rules,
                                     rpath, out)
            out.members[member] = comp
            return flat
        mapped = entry.mapped(tname) if entry is not None else tname
        self.types[member] = lookup(mapped)
        if self.types[member] is None:
            heat = heat_types.unsupported(tname, target_candidates(self.scope.options))
            if heat is not None:
                self.scope.add("unsupported-kind", f"resource '{member}': '{tname}' {heat[0]}",
                               self.scope.doc.loc((*rpath, "type")), heat[1])
                return {}
            self.scope.add("unknown-resource-type", f"resource '{member}': unknown resource type "
                     f"'{tname}'", self.scope.doc.loc((*rpath, "type")),
                     did_you_mean(tname, known_type_names(), "types"))
            return {}
        result = self.resolve_member(member, mdef, rpath)
        if result is None:
            return {}
        props, _ = result
        props = native_attrs(props, self.types)
        found = self.types[member]
        assert found is not None
        limits.charge_resources(1, self.scope.doc.key_loc(rpath), f"group member '{member}'")
        out.requests[member] = replace(
            request(self.scope, member, rpath, props, rules, kind=found[0].kind),
            address=member)
        return {member: DesiredResource(
            address=member, type=tname, kind=found[0].kind, properties=props,
            depends_on=frozenset(explicit | dependencies(props)),
            placement=Placement("", ""), loc=self.scope.doc.key_loc(rpath))}

    def _stack(self, name: str, inline: Any, path: str | None, props: Mapping[str, Any],
               explicit: set[str], inherited: tuple[Rule, ...], rpath: Path, out: Expansion,
               file_loc: Loc | None = None) -> tuple[dict[str, DesiredResource], Composite]:
        """A nested template (inline, or the file at key ``path``) resolved on its own,
        then grafted in under ``<name>.``."""
        empty = Composite(name, "stack", prefix=f"{name}.",
                          ref=f"{self.scope.options.stack}.{name}")
        loc = self.scope.doc.loc((*rpath, "type"))
        doc = self._nested_doc(name, inline, path, file_loc or loc)
        if doc is None:
            return {}, empty
        data = doc.data if isinstance(doc.data, Mapping) else {}
        declared = section(data, "parameters")
        given: dict[str, tuple[Any, Loc]] = {}
        deferred: dict[str, Any] = {}
        for key, value in props.items():
            ploc = self.scope.doc.loc((*rpath, "properties", key))
            if key not in declared:
                self.scope.add("unknown-property", f"resource '{name}': the nested template "
                         f"{doc.file} has no parameter '{key}'", self.scope.doc.key_loc(
                             (*rpath, "properties", key)),
                         did_you_mean(str(key), list(declared), "parameters")
                         or "its parameters are the properties a template resource takes")
            elif dependencies(value):
                deferred[str(key)] = value
            elif value is not UNKNOWN:
                given[str(key)] = (value, ploc)
        # the nested template's own files are relative to its own file (inline: to ours)
        base = posixpath.dirname(path) if path else self.files.base
        options = replace(self.scope.options, nested=True, parent_values=given, deferred=deferred,
                          registry=self.registry, environments=(), params={},
                          file_base=base, file_root=self.file_root)
        limits.charge_nodes(self.cache.nodes(doc), loc,
                            f"resource '{name}': nested template {doc.file}")
        try:
            with limits.nested(doc.file, loc):
                inner = self.resolve_nested(doc, options)
        except DiagnosticError as exc:
            self.scope.diags.extend(exc.diagnostics)
            return {}, empty
        self.files.texts.update(inner.files)  # keyed alike
        prefix = f"{name}."
        names = frozenset(inner.resources)
        parent_res = self.residency or stack_residency(self.scope)
        if inner.residency is not None and parent_res is not None and any(
                inner.residency.allows(c) and not parent_res.allows(c)
                for c in candidates(self.scope.options.targets)):
            self.scope.add("residency-widened", f"resource '{name}': the nested template "
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
                out.requests[prefix + address] = replace(
                    q, address=prefix + address, rules=(*inherited, *q.rules),
                    links=frozenset(prefix + link if link in names else link
                                    for link in q.links),
                    residencies=(*q.residencies,
                                 *((inner.residency,) if inner.residency else ())))
        outputs = {o: graft_tree(out.value, prefix, names) for o, out in inner.outputs.items()}
        ref = outputs.get("OS::stack_id", empty.ref)
        return flat, Composite(name, "stack", outputs=outputs, prefix=prefix,
                               addresses=frozenset(flat), ref=ref)

    def _nested_doc(self, name: str, inline: Any, path: str | None, loc: Loc) -> Document | None:
        if path is None:  # OS::Heat::Stack: the template is inline
            if isinstance(inline, str):
                text = inline
            elif isinstance(inline, Mapping):
                text = yaml.safe_dump(dict(inline), sort_keys=False)
            else:
                self.scope.add("missing-property", f"resource '{name}': OS::Heat::Stack needs a "
                         "'template' (a template as a mapping or a string)", loc,
                         "template: {heat_template_version: ..., resources: {...}}")
                return None
            return self._parsed(text, f"{self.scope.doc.file}#{name}")
        try:
            text = self.files.get_key(path, loc, path, "template")
        except DiagnosticError as exc:
            self.scope.diags.extend(exc.diagnostics)
            return None
        return self._parsed(text, posixpath.normpath(posixpath.join(self.file_root, path)))

    def _parsed(self, text: str, file: str) -> Document | None:
        """A nested template, parsed once per run (documents are never modified)."""
        found = self.cache.document(text, file)
        if isinstance(found, DiagnosticError):
            self.scope.diags.extend(found.diagnostics)
            return None
        return found
