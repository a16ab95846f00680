"""Composite resources: resource groups and nested stacks, flattened into one stack.

A group (``Cloud::Group`` / ``OS::Heat::ResourceGroup``) becomes members
``<group>.<index>``; a template resource (a type that is a template file, or
``OS::Heat::Stack``) becomes the nested template's resources under
``<name>.<nested name>``.  Everything here is a pure rewrite of value trees:
references to composites (``get_attr: [group, resource.1, first_address]``,
``get_attr: [nested, an_output]``, ...) are turned into references to the
flattened members, so plan and apply only ever see plain resources.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cloudtmpl import limits
from cloudtmpl.functions import Context, Function, GetAttr, GetResource, evaluate
from cloudtmpl.model import UNKNOWN

GROUP_TYPES = ("Cloud::Group", "OS::Heat::ResourceGroup")
STACK_TYPE = "OS::Heat::Stack"
DEFAULT_INDEX_VAR = "%index%"
OUTER = "\0outer"  # the dependency an Outer node reports inside a nested template


@dataclass(frozen=True, repr=False)
class Outer(Function):
    """A parent stack's value handed to a nested template as a parameter.

    Inside the nested template it is opaque (its references are the parent's);
    grafting unwraps it.  Its one fake dependency keeps partial evaluation from
    trying to compute it.
    """

    name: ClassVar[str] = "parent value"
    tree: Any = None

    def dependencies(self) -> set[str]:
        return {OUTER}

    def result(self, ctx: Context) -> Any:
        return UNKNOWN

    def partial(self, ctx: Context) -> Any:
        return self

    def to_text(self) -> str:
        return f"(from the parent stack: {self.tree!r})"


@dataclass(frozen=True, repr=False)
class Select(Function):
    """``get_attr: [nested, output, key...]``: a nested output tree, then a path into it."""

    name: ClassVar[str] = "get_attr"

    def result(self, ctx: Context) -> Any:
        value = evaluate(self.args[0], ctx)
        for key in self.args[1:]:
            key = evaluate(key, ctx)
            if value is UNKNOWN or key is UNKNOWN:
                return UNKNOWN
            try:
                value = value[key] if not isinstance(value, list) else value[int(key)]
            except (KeyError, IndexError, TypeError, ValueError):
                return None
        return value

    def to_text(self) -> str:
        return "{get_attr: " + repr(list(self.args)) + "}"


def rewrite(tree: Any, fn: Callable[[Function], Any]) -> Any:
    """``tree`` with every function node replaced by ``fn(node)``, innermost first."""
    if isinstance(tree, Outer):
        return fn(tree)
    if isinstance(tree, Function):
        return fn(tree.with_args(tuple(rewrite(a, fn) for a in tree.args)))
    if isinstance(tree, Mapping):
        return {k: rewrite(v, fn) for k, v in tree.items()}
    if isinstance(tree, list):
        return [rewrite(v, fn) for v in tree]
    return tree


def substitute_index(raw: Any, var: str, index: int) -> Any:
    """A group member's definition: ``var`` replaced by the index in every string
    (none: ``var`` is empty, as in a scaling group)."""
    if not var:
        return raw
    if isinstance(raw, str):
        return raw.replace(var, str(index))
    if isinstance(raw, Mapping):
        return {substitute_index(k, var, index): substitute_index(v, var, index)
                for k, v in raw.items()}
    if isinstance(raw, list):
        return [substitute_index(v, var, index) for v in raw]
    return raw


def member_indexes(count: int, removed: set[str]) -> list[int]:
    """The first ``count`` indexes not removed by ``removal_policies`` (Heat's rule:
    removed members are not reused, later ones take their place)."""
    out: list[int] = []
    i = 0
    while len(out) < count:
        if str(i) not in removed:
            out.append(i)
        i += 1
    return out


@dataclass(frozen=True)
class Composite:
    """What a flattened composite resource turned into, for rewriting references."""

    name: str
    kind: str  # "group" or "stack"
    members: tuple[str, ...] = ()  # group: member addresses, in index order
    indexes: tuple[int, ...] = ()
    outputs: Mapping[str, Any] = field(default_factory=dict)  # stack: output trees
    prefix: str = ""  # stack: "<name>."
    addresses: frozenset[str] = frozenset()  # every flattened address it stands for
    ref: Any = None  # what get_resource of the composite gives
    scaling: bool = False  # a scaling group: current_size, outputs, outputs_list


def resolve_refs(tree: Any, composites: Mapping[str, Composite]) -> Any:
    """References to composites rewritten into references to their members.

    A reference to a whole group becomes one per member, one to a nested output a
    copy of its tree: each counts in the run's total nodes (:mod:`cloudtmpl.limits`).
    """

    def fn(node: Function) -> Any:
        target = node.args[0] if isinstance(node, (GetResource, GetAttr)) else None
        comp = composites.get(str(target)) if target is not None else None
        if comp is None:
            return node
        if isinstance(node, GetResource):
            return comp.ref
        assert isinstance(node, GetAttr)
        attr, path = node.attribute, tuple(node.path)
        if attr is not None and attr.startswith("resource."):
            member, _, rest = attr[len("resource."):].partition(".")
            inner = f"{comp.name}.{member}"
            if rest:
                return resolve_refs(GetAttr((inner, rest, *path), node.loc), composites)
            if path:
                return resolve_refs(GetAttr((inner, *path), node.loc), composites)
            return resolve_refs(GetResource((inner,), node.loc), composites)
        if comp.kind == "group":
            limits.charge_nodes(len(comp.members) * (1 + len(path)), node.loc,
                                f"{node.name}: [{comp.name}, {attr}] (one per member)")

            def one(ref: Function) -> Any:  # a member that is a nested stack: its own refs
                return resolve_refs(ref, composites) if ref.args[0] in composites else ref

            if comp.scaling and attr == "current_size":
                return len(comp.members)
            if comp.scaling and attr == "outputs" and path:
                return {str(i): one(GetAttr((m, *path), node.loc))
                        for i, m in zip(comp.indexes, comp.members, strict=True)}
            if comp.scaling and attr == "outputs_list" and path:
                return [one(GetAttr((m, *path), node.loc)) for m in comp.members]
            if attr == "refs":
                return [one(GetResource((m,), node.loc)) for m in comp.members]
            if attr == "refs_map":
                return {str(i): one(GetResource((m,), node.loc))
                        for i, m in zip(comp.indexes, comp.members, strict=True)}
            return [one(GetAttr((m, attr, *path), node.loc)) for m in comp.members]
        output = comp.outputs.get(str(attr))
        if output is None:
            return None
        limits.charge_nodes(limits.count_nodes(output, limits.remaining_nodes()), node.loc,
                            f"{node.name}: [{comp.name}, {attr}] (the nested output)")
        return Select((output, *path), node.loc) if path else output

    return rewrite(tree, fn)


def graft_tree(tree: Any, prefix: str, inner: frozenset[str]) -> Any:
    """A nested template's tree in the parent's namespace: its own resources renamed
    ``<prefix><name>``, parent values (Outer) unwrapped."""

    def fn(node: Function) -> Any:
        if isinstance(node, Outer):
            return node.tree
        if isinstance(node, (GetResource, GetAttr)) and str(node.args[0]) in inner:
            return node.with_args((prefix + str(node.args[0]), *node.args[1:]))
        return node

    return rewrite(tree, fn)


def expand_deps(names: set[str], composites: Mapping[str, Composite]) -> set[str]:
    """Dependencies on composites become dependencies on everything they stand for."""
    out: set[str] = set()
    for name in names:
        comp = composites.get(name)
        out |= set(comp.addresses) if comp is not None else {name}
    return out
