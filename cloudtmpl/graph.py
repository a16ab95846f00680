"""The dependency graph of a resolved stack, and its text renderings.

Nodes are resource addresses (node attribute ``resource`` holds the
:class:`~cloudtmpl.model.DesiredResource`); an edge ``u -> v`` means *v depends
on u*, so a topological order is a creation order (and its reverse a deletion
order).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Protocol

import networkx as nx

from cloudtmpl.diagnostics import Diagnostic, DiagnosticError
from cloudtmpl.model import DesiredResource


class Stack(Protocol):
    """What the graph needs of a stack (a ResolvedStack has it)."""

    @property
    def name(self) -> str: ...

    @property
    def resources(self) -> Mapping[str, DesiredResource]: ...


def _graph(resources: Mapping[str, DesiredResource], name: str) -> nx.DiGraph:
    g = nx.DiGraph(name=name)
    for address, resource in resources.items():
        g.add_node(address, resource=resource)
    for address, resource in resources.items():
        for dep in sorted(resource.depends_on):
            if dep in resources:
                g.add_edge(dep, address)
    return g


def build_graph(stack: Stack) -> nx.DiGraph:
    """The DAG of ``stack``; a cycle is a ``dependency-cycle`` DiagnosticError."""
    g = _graph(stack.resources, stack.name)
    diags = _cycles(g, stack.resources)
    if diags:
        raise DiagnosticError(diags)
    return g


def cycle_diagnostics(resources: Mapping[str, DesiredResource]) -> list[Diagnostic]:
    """One ``dependency-cycle`` diagnostic per cycle (resolve reports them with the rest)."""
    return _cycles(_graph(resources, ""), resources)


def _cycles(g: nx.DiGraph, resources: Mapping[str, DesiredResource]) -> list[Diagnostic]:
    order = {address: i for i, address in enumerate(resources)}
    diags: list[Diagnostic] = []
    components = [c for c in nx.strongly_connected_components(g)
                  if len(c) > 1 or any(g.has_edge(n, n) for n in c)]
    for component in sorted(components, key=lambda c: min(order[n] for n in c)):
        start = min(component, key=order.__getitem__)
        # Follow "depends on" (edges reversed) inside the component back to the start.
        sub = g.subgraph(component).reverse(copy=True)
        path = [start] if sub.has_edge(start, start) else nx.shortest_path(
            sub, start, min(sub.predecessors(start), key=order.__getitem__))
        cycle = [*path, start]

        def label(address: str) -> str:
            return f"{address} (line {resources[address].loc.line})"

        text = " -> ".join(label(a) for a in cycle)
        first = resources[start]
        diags.append(Diagnostic(
            "dependency-cycle",
            f"dependency cycle: {text} (each resource depends on the next)",
            first.loc,
            "break the cycle: remove a depends_on entry or a get_resource/get_attr "
            "reference between these resources"))
    return diags


def creation_order(g: nx.DiGraph) -> list[str]:
    """A deterministic topological order (ties broken by address)."""
    return list(nx.lexicographical_topological_sort(g))


def _kind(g: nx.DiGraph, node: str) -> str:
    resource = g.nodes[node].get("resource")
    return str(getattr(resource, "kind", ""))


def to_dot(g: nx.DiGraph) -> str:
    """Graphviz DOT text (edges point from a dependency to its dependent)."""
    name = json.dumps(str(g.graph.get("name", "stack")))
    lines = [f"digraph {name} {{", "  rankdir=LR;", "  node [shape=box];"]
    for node in g.nodes:
        label = json.dumps(f"{node}\\n{_kind(g, node)}").replace("\\\\n", "\\n")
        lines.append(f"  {json.dumps(node)} [label={label}];")
    for u, v in g.edges:
        lines.append(f"  {json.dumps(u)} -> {json.dumps(v)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(g: nx.DiGraph) -> str:
    """Mermaid flowchart text (edges point from a dependency to its dependent)."""
    ids = {node: f"n{i}" for i, node in enumerate(g.nodes)}
    lines = ["flowchart LR"]
    for node, nid in ids.items():
        text = f"{node}<br/>{_kind(g, node)}".replace('"', "#quot;")
        lines.append(f'  {nid}["{text}"]')
    for u, v in g.edges:
        lines.append(f"  {ids[u]} --> {ids[v]}")
    return "\n".join(lines) + "\n"
