"""Dependency graph: creation order, cycles named with lines, DOT and Mermaid text."""

from __future__ import annotations

import networkx as nx
import pytest

from cloudtmpl.diagnostics import DiagnosticError, Loc
from cloudtmpl.graph import build_graph, creation_order, to_dot, to_mermaid
from cloudtmpl.loader import load_text
from cloudtmpl.model import Target
from cloudtmpl.resolve import ResolvedStack, ResolveOptions, resolve

TARGETS = {"sandbox-aws": Target("sandbox-aws", "aws", "us-east-1")}


def stack(text: str) -> ResolvedStack:
    doc = load_text("heat_template_version: 2021-04-16\n" + text, "g.yaml")
    return resolve(doc, ResolveOptions(stack="demo", target="sandbox-aws", targets=TARGETS))


CHAIN = """\
resources:
  attach:
    type: Cloud::Block::VolumeAttachment
    properties: {instance_uuid: {get_resource: web}, volume_id: {get_resource: vol}}
  web:
    type: Cloud::Compute::Server
    properties: {image: i, flavor: f, key_name: {get_resource: key}}
  vol: {type: Cloud::Block::Volume, properties: {size: 1}}
  key: {type: Cloud::Compute::KeyPair}
  ip: {type: Cloud::Network::FloatingIP, depends_on: web}
"""


def test_nodes_edges_and_order() -> None:
    s = stack(CHAIN)
    g = build_graph(s)
    assert set(g.nodes) == {"attach", "web", "vol", "key", "ip"}
    assert g.nodes["web"]["resource"] is s.resources["web"]
    assert set(g.edges) == {("web", "attach"), ("vol", "attach"), ("key", "web"), ("web", "ip")}
    assert creation_order(g) == ["key", "vol", "web", "attach", "ip"]
    assert nx.is_directed_acyclic_graph(g)
    assert g.graph["name"] == "demo"


def test_cycle_of_three_names_every_resource_with_its_line() -> None:
    text = """\
resources:
  a: {type: Cloud::Compute::KeyPair, depends_on: c}
  b: {type: Cloud::Compute::KeyPair, depends_on: a}
  c:
    type: Cloud::Network::FloatingIP
    properties: {server: {get_resource: b}}
  d: {type: Cloud::Compute::KeyPair, depends_on: a}
"""
    with pytest.raises(DiagnosticError) as exc:
        stack(text)  # resolve reports cycles with every other problem
    (d,) = exc.value.diagnostics
    assert d.code == "dependency-cycle"
    assert d.loc == Loc("g.yaml", 3, 3)
    assert d.message == ("dependency cycle: a (line 3) -> c (line 5) -> b (line 4) -> a (line 3) "
                         "(each resource depends on the next)")
    assert "depends_on" in d.hint


def test_self_dependency_and_two_cycles() -> None:
    text = """\
resources:
  s: {type: Cloud::Compute::KeyPair, depends_on: s}
  x: {type: Cloud::Compute::KeyPair, depends_on: y}
  y: {type: Cloud::Compute::KeyPair, depends_on: x}
"""
    with pytest.raises(DiagnosticError) as exc:
        stack(text)  # resolve reports cycles with every other problem
    assert [d.message for d in exc.value.diagnostics] == [
        "dependency cycle: s (line 3) -> s (line 3) (each resource depends on the next)",
        "dependency cycle: x (line 4) -> y (line 5) -> x (line 4) "
        "(each resource depends on the next)",
    ]


def test_dot() -> None:
    g = build_graph(stack("resources:\n  key: {type: Cloud::Compute::KeyPair}\n"
                          "  web: {type: Cloud::Compute::Server, properties: "
                          "{image: i, flavor: f, key_name: {get_resource: key}}}\n"))
    assert to_dot(g) == (
        'digraph "demo" {\n'
        "  rankdir=LR;\n"
        "  node [shape=box];\n"
        '  "key" [label="key\\nCloud::Compute::KeyPair"];\n'
        '  "web" [label="web\\nCloud::Compute::Server"];\n'
        '  "key" -> "web";\n'
        "}\n")


def test_mermaid() -> None:
    g = build_graph(stack("resources:\n  key: {type: Cloud::Compute::KeyPair}\n"
                          "  web: {type: Cloud::Compute::Server, properties: "
                          "{image: i, flavor: f, key_name: {get_resource: key}}}\n"))
    assert to_mermaid(g) == (
        "flowchart LR\n"
        '  n0["key<br/>Cloud::Compute::KeyPair"]\n'
        '  n1["web<br/>Cloud::Compute::Server"]\n'
        "  n0 --> n1\n")


def test_cycle_is_reported_with_other_problems_in_one_run() -> None:
    text = """\
resources:
  a: {type: Cloud::Compute::KeyPair, depends_on: b}
  b: {type: Cloud::Compute::KeyPair, depends_on: a, properties: {colour: red}}
"""
    with pytest.raises(DiagnosticError) as exc:
        stack(text)
    assert sorted(d.code for d in exc.value.diagnostics) == ["dependency-cycle",
                                                             "unknown-property"]
