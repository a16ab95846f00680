"""Static checks on a template's parsed trees: every reference names something
declared (a parameter, a resource, an attribute of its type, a condition), and
deletion policies fit their resources.  Diagnostics go to the :class:`Scope`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cloudtmpl.diagnostics import Loc
from cloudtmpl.functions import And, Function, GetAttr, GetParam, GetResource, If, Not, walk
from cloudtmpl.resolve.scope import Scope
from cloudtmpl.resolve.values import PSEUDO_PARAMETERS
from cloudtmpl.resource_spec import Alias, ResourceType
from cloudtmpl.schema import did_you_mean

# a resource's type as found (None: unknown, or a composite)
Types = dict[str, tuple[ResourceType, Alias | None] | None]


@dataclass(frozen=True)
class Names:
    """What a template declares, for checking its references: parameters, resources
    and the types found for them (filled in as types are looked up)."""

    declared: Mapping[str, Any]
    resources: Mapping[str, Any]
    types: Types


def check_condition_ref(scope: Scope, cond: Any, loc: Loc, conditions: Mapping[str, Any]
                        ) -> None:
    """A condition named by ``cond`` must be declared under ``conditions:``."""
    if isinstance(cond, str) and cond not in conditions:
        scope.add("unknown-condition", f"unknown condition '{cond}'", loc,
                  did_you_mean(cond, conditions, "conditions")
                  or "declare it under 'conditions:'")


def check_tree(scope: Scope, names: Names, tree: Any, conditions: Mapping[str, Any]) -> None:
    """Every get_param, get_resource, get_attr and condition reference in ``tree``."""
    declared, resource_defs = names.declared, names.resources
    for node in walk(tree):
        if isinstance(node, GetParam):
            pname = node.param_name
            if pname not in declared and pname not in PSEUDO_PARAMETERS:
                scope.add("unknown-parameter", f"get_param: unknown parameter '{pname}'",
                          node.loc, did_you_mean(pname, declared, "parameters")
                          or "declare it under 'parameters:'")
        elif isinstance(node, (GetResource, GetAttr)):
            target = node.resource
            if target not in resource_defs:
                scope.add("unknown-resource", f"{node.name}: unknown resource '{target}'",
                          node.loc, did_you_mean(target, resource_defs, "resources")
                          or "declare it under 'resources:'")
            elif isinstance(node, GetAttr) and node.attribute is not None:
                _check_attribute(scope, node, names.types)
        elif isinstance(node, (If, Not, And)):
            for arg in node.args[:1] if isinstance(node, If) else node.args:
                check_condition_ref(scope, arg, node.loc, conditions)


def _check_attribute(scope: Scope, node: GetAttr, types: Types) -> None:
    found = types.get(node.resource)
    if found is None:
        return
    rtype, alias = found
    names = set(rtype.attributes) | (set(alias.attributes) if alias else set())
    if node.attribute not in names and not rtype.open_attributes:
        type_name = alias.name if alias else rtype.kind
        scope.add("unknown-attribute",
                  f"get_attr: {type_name} resource '{node.resource}' has no attribute "
                  f"'{node.attribute}'", node.loc,
                  did_you_mean(node.attribute, names, "attributes") or
                  f"{type_name} has no attributes")


def native_attrs(tree: Any, types: Types) -> Any:
    """Rename alias attribute names in get_attr nodes to native names."""
    if isinstance(tree, Function):
        node = tree.with_args(tuple(native_attrs(a, types) for a in tree.args))
        if isinstance(node, GetAttr):
            found = types.get(node.resource)
            alias = found[1] if found else None
            if alias is not None and node.attribute is not None \
                    and node.attribute in alias.attributes:
                node = node.with_attribute(alias.attributes[node.attribute])
        return node
    if isinstance(tree, Mapping):
        return {k: native_attrs(v, types) for k, v in tree.items()}
    if isinstance(tree, list):
        return [native_attrs(v, types) for v in tree]
    return tree


def check_dropped_refs(scope: Scope, owner: str, tree: Any, dropped: set[str]) -> None:
    """No reference to a resource whose condition excludes it."""
    for node in walk(tree):
        if isinstance(node, (GetResource, GetAttr)) and node.resource in dropped:
            scope.add("unknown-resource",
                      f"{owner} references resource '{node.resource}', which its condition "
                      "excludes", node.loc,
                      "give the reference the same condition, or wrap it in "
                      "{if: [condition, ..., ...]}")


def check_deletion_policies(scope: Scope, resource_defs: Mapping[str, Mapping[str, Any]],
                            types: Types, composites: Mapping[str, str]) -> None:
    """Lowercase policies need HOT 2016-10-14; Snapshot only where the type has it."""
    for name, rdef in resource_defs.items():
        policy = rdef.get("deletion_policy")
        if isinstance(policy, str) and policy.islower():
            scope.feature(f"the lowercase deletion_policy '{policy}'", "2016-10-14",
                          scope.doc.loc(("resources", name, "deletion_policy")))
        if isinstance(policy, str) and policy.capitalize() == "Snapshot":
            _check_snapshot_policy(scope, name, rdef, types, composites)


def _check_snapshot_policy(scope: Scope, name: str, rdef: Mapping[str, Any], types: Types,
                           composites: Mapping[str, str]) -> None:
    """Snapshot only where the type supports it (Heat: '"Snapshot" deletion policy
    not supported'); a server is accepted (Heat saves an image of it) and kept."""
    found = types.get(name)
    if found is None and name not in composites:
        return  # an unknown type: reported already
    if found is not None and found[0].on_snapshot != "refuse":
        return
    what = str(rdef.get("type"))
    scope.add("deletion-policy-unsupported",
              f"resource '{name}': deletion_policy Snapshot is not supported for {what} "
              "(Heat: \"Snapshot\" deletion policy not supported)",
              scope.doc.key_loc(("resources", name, "deletion_policy")),
              "Snapshot is supported for Cloud::Block::Volume / OS::Cinder::Volume; "
              "use Retain or Delete")
