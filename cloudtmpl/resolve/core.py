"""The resolver: one template (and, through it, its nested templates) resolved into
desired resources.  The core keeps the walk and its order: parameters
(:mod:`.environments`, :mod:`.parameters`), conditions (:mod:`.conditions`), types and
static checks (:mod:`.checks`), each resource's properties (:mod:`.properties`) and
lifecycle (:mod:`.lifecycle`), composites (:mod:`.composites`, :mod:`cloudtmpl.compose`),
outputs, the stack's SSH defaults (:mod:`.ssh`) and placement (:mod:`.placing`)."""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from cloudtmpl import heat_types, limits
from cloudtmpl.compose import GROUP_TYPES, STACK_TYPE, Composite, expand_deps, resolve_refs
from cloudtmpl.diagnostics import Diagnostic, DiagnosticError
from cloudtmpl.functions import OMIT, dependencies, to_text
from cloudtmpl.graph import cycle_diagnostics
from cloudtmpl.loader import Document, Path
from cloudtmpl.model import DesiredResource, Output, Placement, canonical_json
from cloudtmpl.names import address_problems
from cloudtmpl.placement import Request, Residency
from cloudtmpl.resolve.checks import (
    Names,
    Types,
    check_deletion_policies,
    check_dropped_refs,
    check_tree,
    native_attrs,
)
from cloudtmpl.resolve.composites import Composer
from cloudtmpl.resolve.conditions import (
    StackContext,
    check_conditions,
    condition_of,
    parse_conditions,
)
from cloudtmpl.resolve.environments import merge_environments
from cloudtmpl.resolve.files import Files
from cloudtmpl.resolve.lifecycle import lifecycle
from cloudtmpl.resolve.networking import settle
from cloudtmpl.resolve.parameters import Parameters, check_parameter_groups, resolve_parameters
from cloudtmpl.resolve.placing import place_all, relink, request, stack_residency
from cloudtmpl.resolve.properties import properties
from cloudtmpl.resolve.scaling_groups import check_policies
from cloudtmpl.resolve.scope import Scope, is_template_file, section
from cloudtmpl.resolve.ssh import stack_ssh, with_ssh_defaults
from cloudtmpl.resolve.values import (
    ParseCache,
    ResolvedStack,
    ResolveOptions,
    ResourceRegistry,
    target_candidates,
)
from cloudtmpl.resources import known_type_names, lookup
from cloudtmpl.scaling import ScalingGroup
from cloudtmpl.scaling_kinds import (
    INSTANCE_GROUP_TYPES,
    SCALING_GROUP_TYPES,
    UNSUPPORTED_HINT,
    UNSUPPORTED_TYPES,
)
from cloudtmpl.schema import describe, did_you_mean
from cloudtmpl.sensitive import texts


class _Resolver:
    """One template's walk: what it declares, then each step in Heat's order."""

    def __init__(self, doc: Document, options: ResolveOptions, cache: ParseCache) -> None:
        self.scope = scope = Scope(doc, options)
        self.doc = doc
        self.options = options
        self.cache = cache
        self.declared: dict[str, Mapping[str, Any]] = {
            k: v for k, v in section(scope.data, "parameters").items()
            if isinstance(k, str) and isinstance(v, Mapping)}
        self.resource_defs: dict[str, Mapping[str, Any]] = {
            k: v for k, v in section(scope.data, "resources").items()
            if isinstance(k, str) and isinstance(v, Mapping)}
        self.registry = ResourceRegistry()
        self.types: Types = {}
        self.names = Names(self.declared, self.resource_defs, self.types)
        self.params = Parameters()
        self.files = Files(options.read_file, options.file_base)
        self.file_root = options.file_root if options.file_root is not None else \
            posixpath.dirname(doc.file)
        # composite resources: name -> "group", "stack" or the template file it is
        self.composite_kind: dict[str, str] = {}
        self.requests: dict[str, Request] = {}
        self.scope_residency: Residency | None = None

    def lookup_types(self) -> None:
        add = self.scope.add
        for name, rdef in self.resource_defs.items():
            tname = rdef.get("type")
            if not isinstance(tname, str):
                self.types[name] = None
                continue
            loc = self.doc.loc(("resources", name, "type"))
            entry = self.registry.lookup(name, tname)
            # a registry entry's file is a key already (relative to its environment)
            nested = entry.target if entry is not None and entry.is_template else \
                self.files.key(tname) if is_template_file(tname) else None
            if nested is not None or tname in GROUP_TYPES or tname == STACK_TYPE \
                    or tname in SCALING_GROUP_TYPES or tname in INSTANCE_GROUP_TYPES:
                self.types[name] = None
                self.composite_kind[name] = (
                    "group" if tname in GROUP_TYPES else "stack" if tname == STACK_TYPE
                    else "scaling" if tname in SCALING_GROUP_TYPES
                    else "instances" if tname in INSTANCE_GROUP_TYPES else str(nested))
                continue
            if tname in UNSUPPORTED_TYPES:
                self.types[name] = None
                add("unsupported-kind", f"resource '{name}': {tname} ({UNSUPPORTED_TYPES[tname]})"
                    " is not supported", loc, UNSUPPORTED_HINT)
                continue
            mapped = entry.mapped(tname) if entry is not None else tname
            found = lookup(mapped)
            self.types[name] = found
            if found is None:
                if mapped != tname:
                    add("unknown-resource-type",
                        f"resource '{name}': type '{tname}' is mapped by the environment to "
                        f"'{mapped}', which is not a known type", loc,
                        "map it to a known type, or to a template file (a nested stack)")
                elif (heat := heat_types.unsupported(tname, target_candidates(self.options))):
                    add("unsupported-kind", f"resource '{name}': '{tname}' {heat[0]}", loc,
                        heat[1])
                else:
                    add("unknown-resource-type",
                        f"resource '{name}': unknown resource type '{tname}'", loc,
                        did_you_mean(tname, known_type_names(), "types"))

    def resolve_resource(self, name: str, rdef: Mapping[str, Any], ctx: StackContext,
                         conditions: Mapping[str, Any], rpath: Path | None = None
                         ) -> tuple[Any, set[str]] | None:
        """Partially evaluated native properties and explicit depends_on, or None if dropped."""
        scope, doc = self.scope, self.doc
        rpath = rpath or ("resources", name)
        if condition_of(scope, self.names, rdef, rpath, ctx, conditions) is False:
            return None
        ppath: Path = (*rpath, "properties")
        raw_props = rdef.get("properties")
        if raw_props is not None and not isinstance(raw_props, Mapping):
            scope.add("invalid-type", f"resource '{name}': properties must be a mapping of "
                      f"property values, not {describe(raw_props)}", doc.loc(ppath),
                      "write each property under 'properties:' (a function cannot produce them)")
        raw_props = raw_props if isinstance(raw_props, Mapping) else {}
        if self.composite_kind.get(name) == "stack":
            # the nested template is the nested stack's own scope: not parsed here
            raw_props = {k: v for k, v in raw_props.items() if k != "template"}
        tree = scope.parse(raw_props, ppath)
        if not isinstance(tree, Mapping):  # e.g. properties: {get_param: p}
            scope.add("invalid-type", f"resource '{name}': properties must be a mapping of "
                      "property values, not a function call", doc.loc(ppath),
                      "write each property under 'properties:' (a function cannot produce "
                      "them all)")
            tree = {}
        check_tree(scope, self.names, tree, conditions)
        tree = native_attrs(tree, self.types)
        props = properties(scope, name, rdef, tree, self.types.get(name), ctx, rpath)
        explicit: set[str] = set()
        deps = rdef.get("depends_on")
        items = [deps] if isinstance(deps, str) else deps if isinstance(deps, list) else []
        for i, dep in enumerate(items):
            if not isinstance(dep, str):
                continue
            dpath: Path = (*rpath, "depends_on") if isinstance(deps, str) else \
                (*rpath, "depends_on", i)
            if dep not in self.resource_defs:
                scope.add("unknown-resource", f"resource '{name}' depends on unknown resource "
                          f"'{dep}'", doc.loc(dpath),
                          did_you_mean(dep, self.resource_defs, "resources"))
            else:
                explicit.add(dep)
        return props, explicit

    def composer(self, ctx: StackContext, conditions: Mapping[str, Any]) -> Composer:
        return Composer(
            scope=self.scope, cache=self.cache, registry=self.registry, types=self.types,
            files=self.files, file_root=self.file_root, ctx=ctx,
            residency=self.scope_residency,
            resolve_member=lambda n, d, p: self.resolve_resource(n, d, ctx, conditions, p),
            resolve_nested=lambda doc, options: _Resolver(doc, options, self.cache).run())

    def outputs(self, ctx: StackContext, trees: Mapping[str, Any], dropped: set[str]
                ) -> dict[str, Output]:
        """The template's outputs whose condition holds, evaluated as far as they can be."""
        scope, doc = self.scope, self.doc
        outputs: dict[str, Output] = {}
        for oname, odef in section(scope.data, "outputs").items():
            if not isinstance(odef, Mapping):
                continue
            opath: Path = ("outputs", oname)
            if condition_of(scope, self.names, odef, opath, ctx, trees) is False:
                continue
            tree = scope.parse(odef.get("value"), (*opath, "value"))
            check_tree(scope, self.names, tree, trees)
            value = scope.evaluate(native_attrs(tree, self.types), ctx)
            value = None if value is OMIT else value
            limits.check_value(value, doc.loc((*opath, "value")), f"output '{oname}'")
            check_dropped_refs(scope, f"output '{oname}'", value, dropped)
            desc = odef.get("description")
            outputs[str(oname)] = Output(str(oname), value, desc if isinstance(desc, str) else "",
                                         doc.key_loc(opath))
        return outputs

    def scrubbed(self, diags: Iterable[Diagnostic]) -> list[Diagnostic]:
        """``diags`` with any hidden parameter value replaced (never shown anywhere), and
        any other sensitive value (a parent stack's, given to a nested template)."""
        values = self.params.values
        secrets = sorted({s for name in self.params.hidden if name in values
                          for s in _secret_texts(values[name])} | texts(values),
                         key=len, reverse=True)
        if not secrets:
            return list(diags)

        def scrub(text: str) -> str:
            for secret in secrets:
                text = text.replace(secret, "******")
            return text

        return [replace(d, message=scrub(d.message), hint=scrub(d.hint)) for d in diags]

    def run(self) -> ResolvedStack:
        scope, doc = self.scope, self.doc
        scope.diags.extend(self.cache.problems(doc))
        given, defaults, self.registry = merge_environments(scope, self.declared)
        self.params = params = resolve_parameters(scope, self.declared, given, defaults)
        check_parameter_groups(scope, self.declared)
        trees, cond_locs = parse_conditions(scope)
        ctx_params = dict(params.values)
        ctx_params["OS::stack_name"] = self.options.stack
        ctx = StackContext(ctx_params, trees, cond_locs, scope.diags, self.files.get)
        check_conditions(scope, self.names, ctx, trees)
        self.lookup_types()
        check_deletion_policies(scope, self.resource_defs, self.types, self.composite_kind)
        self.scope_residency = stack_residency(scope)

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
        scaling: dict[str, ScalingGroup] = {}
        composer = self.composer(ctx, trees)
        for name, (props, explicit) in kept.items():
            rdef = self.resource_defs[name]
            check_dropped_refs(scope, f"resource '{name}'", props, dropped)
            if name in self.composite_kind:
                done = composer.expand(name, self.composite_kind[name], rdef, props,
                                       explicit - dropped)
                resources.update(done.resources)
                self.requests.update(done.requests)
                composites.update(done.members)
                composites[name] = done.composite
                if done.scaling is not None:
                    scaling[name] = done.scaling
                continue
            rpath: Path = ("resources", name)
            limits.charge_resources(1, doc.key_loc(rpath), f"resource '{name}'")
            found = self.types.get(name)
            self.requests[name] = request(scope, name, rpath, props,
                                          kind=found[0].kind if found else "")
            policy = rdef.get("deletion_policy")
            resources[name] = DesiredResource(
                address=name,
                type=str(rdef.get("type")),
                kind=found[0].kind if found else str(rdef.get("type")),
                properties=props,
                depends_on=frozenset((explicit - dropped) | (dependencies(props) - dropped)),
                placement=Placement("", ""),  # chosen for all resources at once below
                loc=doc.key_loc(rpath),
                deletion_policy=policy.capitalize() if isinstance(policy, str) else "Delete",
                timeouts=_timeouts(rdef.get("timeouts")),
                lifecycle=lifecycle(scope, name, rdef, found[0].kind if found else "", ctx),
            )

        check_policies(scope, resources)
        outputs = self.outputs(ctx, trees, dropped)
        if composites:
            resources = {
                a: replace(r, properties=resolve_refs(dict(r.properties), composites),
                           depends_on=frozenset(expand_deps(set(r.depends_on), composites)))
                for a, r in resources.items()}
            outputs = {o: replace(out, value=resolve_refs(out.value, composites))
                       for o, out in outputs.items()}
            self.requests = relink(self.requests, composites)
        # the stack's SSH defaults under every deployment's and hook's own settings (a
        # nested template's were applied by its own resolve: they win over these)
        resources = with_ssh_defaults(resources, stack_ssh(scope, ctx))
        residency = self.scope_residency
        if not self.options.nested:
            scope.diags.extend(address_problems(resources))
            resources, residency = place_all(scope, resources, self.requests)
            resources, implied = settle(resources, self.options.targets)
            scope.diags.extend(implied)
            scope.diags.extend(cycle_diagnostics(resources))
        if any(d.severity == "error" for d in scope.diags):
            raise DiagnosticError(_sorted(self.scrubbed(scope.diags)))
        description = scope.data.get("description")
        return ResolvedStack(
            name=self.options.stack,
            description=description if isinstance(description, str) else "",
            resources=resources,
            outputs=outputs,
            parameters=dict(params.values),
            hidden=params.hidden,
            template_hash=template_hash(doc, self.options.environments),
            params_hash=hashlib.sha256(canonical_json(params.values).encode()).hexdigest(),
            residency=residency,
            version=scope.version,
            files=dict(self.files.texts),
            custom_constraints=params.custom,
            immutable=params.immutable,
            parameter_locs=dict(params.locs),
            registry=self.registry,
            requests=dict(self.requests) if self.options.nested else {},
            scaling=scaling,
        )


def _timeouts(raw: Any) -> dict[str, float]:
    """A resource's ``timeouts`` (checked by the schema): {create|delete: seconds}."""
    if not isinstance(raw, Mapping):
        return {}
    return {k: float(v) for k, v in raw.items()
            if k in ("create", "delete") and isinstance(v, (int, float))}



def _secret_texts(value: Any) -> Iterable[str]:
    """The texts a hidden value could appear as in a message (short ones would garble
    messages, and a hidden value is normally a password or key)."""
    texts = [value] if isinstance(value, str) else [to_text(value), json.dumps(value)]
    if isinstance(value, (list, dict)):
        leaves = value.values() if isinstance(value, dict) else value
        texts += [v if isinstance(v, str) else to_text(v) for v in leaves]
    return [t for t in texts if len(t) >= 4]


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
