"""A resource's properties checked against its type: each value evaluated as far as
parameters allow, names mapped from an alias (Heat's names) to native ones, literal
values checked against the property's type, required properties present."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudtmpl import limits
from cloudtmpl.functions import OMIT, REGISTRY, Context, Function
from cloudtmpl.loader import Path
from cloudtmpl.model import UNKNOWN
from cloudtmpl.resolve.components import check_component
from cloudtmpl.resolve.parameters import INT_RE, bool_from, num_from
from cloudtmpl.resolve.random_strings import check_random_string
from cloudtmpl.resolve.scope import Scope
from cloudtmpl.resolve.ssh import check_ssh
from cloudtmpl.resource_spec import Alias, PropertySpec, ResourceType
from cloudtmpl.resources import DEPLOY_KINDS, RANDOM_STRING
from cloudtmpl.schema import closest, describe, did_you_mean
from cloudtmpl.secret_kinds import SECRET, problems
from cloudtmpl.sensitive import carry
from cloudtmpl.software_kinds import SOFTWARE_COMPONENT

_SPEC_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "list": "a list",
    "map": "a mapping",
    "any": "any value",
}


def check_property(spec: PropertySpec, value: Any) -> tuple[bool, Any]:
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


def properties(scope: Scope, name: str, rdef: Mapping[str, Any], tree: Mapping[Any, Any],
               found: tuple[ResourceType, Alias | None] | None, ctx: Context, rpath: Path
               ) -> dict[str, Any]:
    """The resource's parsed ``properties`` (``tree``) evaluated and checked against its
    type (``found``; None: an unknown type or a composite, whose values pass as given)."""
    doc = scope.doc
    ppath: Path = (*rpath, "properties")
    props: dict[str, Any] = {}
    for pname, ptree in tree.items():
        value = scope.evaluate(ptree, ctx)
        if value is OMIT:
            continue  # a two-argument if whose condition is false: not given
        limits.check_value(value, doc.loc((*ppath, pname)),
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
            scope.add("unknown-property",
                      f"resource '{name}': unknown property '{pname}' for "
                      f"{rdef.get('type')}", doc.key_loc((*ppath, pname)),
                      did_you_mean(pname, allowed, "properties"))
            continue
        if value is None:
            continue  # an empty value means "not given", as in Heat
        if alias is not None and pname in alias.one_of_list and not isinstance(value, list):
            value = carry(value, [value])
        ok, checked = check_property(spec, value)
        value = carry(value, checked)  # "5" for 5: as sensitive as the value was
        if not ok:
            scope.add("property-type",
                      f"resource '{name}': property '{pname}' must be {_SPEC_NAMES[spec.type]}"
                      f", not {describe(value)}", doc.loc((*ppath, pname)),
                      f"write {_SPEC_NAMES[spec.type]} here{_function_lookalike(value)}")
        elif spec.allowed is not None and isinstance(checked, str) \
                and checked not in spec.allowed:
            scope.add("property-value",
                      f"resource '{name}': property '{pname}' must be one of "
                      f"{', '.join(spec.allowed)}, not {checked!r}", doc.loc((*ppath, pname)),
                      did_you_mean(checked, set(spec.allowed), "values")
                      or f"write one of {', '.join(spec.allowed)}")
        props[native] = value
    if found is not None and found[0].kind == RANDOM_STRING.kind:
        check_random_string(scope, props, ppath, name)
    if found is not None and found[0].kind == SOFTWARE_COMPONENT.kind:
        check_component(scope, props, ppath, name)
    if found is not None and found[0].kind in DEPLOY_KINDS \
            and isinstance(props.get("ssh"), Mapping):
        check_ssh(scope, props["ssh"], (*ppath, "ssh"), f"resource '{name}': ssh")
    if found is not None and found[0].kind == SECRET.kind:
        for message, pname, hint in problems(props):
            where = (*ppath, pname) if pname in props else \
                (ppath if "properties" in rdef else rpath)
            scope.add("secret-properties", f"resource '{name}': {message}",
                      doc.loc(where), hint)
    if found is not None:
        rtype, alias = found
        reverse = {v: k for k, v in alias.properties.items()} if alias else {}
        for pname, spec in rtype.properties.items():
            if spec.required and pname not in props:
                written = reverse.get(pname, pname)
                scope.add("missing-property",
                          f"resource '{name}': required property '{written}' is missing",
                          doc.key_loc(ppath if "properties" in rdef else rpath),
                          f"add '{written}:' under properties ({spec.description or spec.type})")
    return props
