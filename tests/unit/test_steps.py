"""The step graph of a create_before_destroy replacement (pure: build_steps only)."""

from __future__ import annotations

import itertools
from typing import Any

import networkx as nx

from cloudtmpl.model import Action, LiveResource, Placement
from cloudtmpl.plan import Change, Plan
from cloudtmpl.steps import build_steps
from tests.unit.planning import TEMPLATE, live_for, plan_of, stack

HERE = Placement("t", "r1")
SERVER = "Cloud::Compute::Server"
FIP = "Cloud::Network::FloatingIP"
ATTACH = "Cloud::Block::VolumeAttachment"
VOLUME = "Cloud::Block::Volume"
HOOK = {"script": "drain", "timeout": 30}


def change(address: str, kind: str, action: Action, pid: str | None = None,
           deps: tuple[str, ...] = (), **hooks: Any) -> Change:
    prior = LiveResource(address, kind, pid, HERE) if pid else None
    return Change(address, kind, kind, action, HERE, prior=prior, depends_on=deps,
                  hooks=hooks)


def plan(*changes: Change) -> Plan:
    return Plan("s", tuple(changes), "t", "p", 1, "f")


def order(p: Plan) -> list[str]:
    g = build_steps(p)
    assert nx.is_directed_acyclic_graph(g)
    return list(nx.topological_sort(g))


def before(g: nx.DiGraph, a: str, b: str) -> bool:
    """Step ``b`` can start only after step ``a`` is done."""
    return bool(nx.has_path(g, a, b))


def test_the_address_moves_after_the_create_and_before_the_drain_and_delete() -> None:
    g = build_steps(plan(
        change("web", SERVER, Action.REPLACE, "i-1", create_before_destroy=True,
               pre_replace=HOOK),
        change("ip", FIP, Action.UPDATE, "eip-1", ("web",)),
        change("vol", VOLUME, Action.NOOP, "vol-1"),
        change("att", ATTACH, Action.REPLACE, "vol-1:i-1", ("web", "vol"))))
    assert nx.is_directed_acyclic_graph(g)
    chain = ["create:web", "update:ip", "hook:web#i-1", "delete:web#i-1"]
    assert all(before(g, a, b) for a, b in itertools.pairwise(chain)), chain
    # the volume is taken from the old server only once it is drained; then it goes to
    # the new one
    assert before(g, "hook:web#i-1", "delete:att#vol-1:i-1")
    assert before(g, "delete:att#vol-1:i-1", "create:att")
    assert before(g, "create:web", "create:att")
    assert before(g, "delete:att#vol-1:i-1", "delete:web#i-1")


def test_without_a_hook_the_move_still_comes_before_the_delete() -> None:
    steps = order(plan(
        change("web", SERVER, Action.REPLACE, "i-1", create_before_destroy=True),
        change("ip", FIP, Action.UPDATE, "eip-1", ("web",))))
    assert steps.index("create:web") < steps.index("update:ip") < steps.index(
        "delete:web#i-1")
    g = build_steps(plan(
        change("web", SERVER, Action.REPLACE, "i-1", create_before_destroy=True),
        change("ip", FIP, Action.UPDATE, "eip-1", ("web",))))
    assert before(g, "update:ip", "delete:web#i-1")


def test_delete_first_replacements_keep_their_order() -> None:
    g = build_steps(plan(
        change("web", SERVER, Action.REPLACE, "i-1", pre_replace=HOOK),
        change("ip", FIP, Action.UPDATE, "eip-1", ("web",))))
    assert nx.is_directed_acyclic_graph(g)
    chain = ["hook:web#i-1", "delete:web#i-1", "create:web", "update:ip"]
    assert all(before(g, a, b) for a, b in itertools.pairwise(chain)), chain


def test_a_replacement_that_cannot_come_up_first_is_replaced_delete_first() -> None:
    """A replaced security group keeps its name: the new one is made only after the old
    one is gone, which the old server holds until it is deleted.  That used to be a
    cycle (nothing ran); now the server is replaced delete-first."""
    text = TEMPLATE.replace(
        "  web:\n    type: Cloud::Compute::Server\n",
        "  web:\n    type: Cloud::Compute::Server\n"
        "    lifecycle: {create_before_destroy: true}\n").replace(
        "    type: Cloud::Network::SecurityGroup\n    properties:\n",
        "    type: Cloud::Network::SecurityGroup\n    properties:\n"
        "      description: {get_param: image}\n")
    p = plan_of(stack(text, image="debian"), live_for(stack(text)))
    assert {c.address: c.action for c in p.changes}["sg"] is Action.REPLACE
    steps = order(p)
    assert steps.index("delete:web#i-1") < steps.index("delete:sg#sg-1") < \
        steps.index("create:sg") < steps.index("create:web")


def test_a_move_that_would_make_a_cycle_only_waits_for_the_create() -> None:
    # ip also depends on a replaced key pair, whose delete (a lower layer) waits for the
    # old server's delete: the move cannot come first, and nothing deadlocks
    g = build_steps(plan(
        change("web", SERVER, Action.REPLACE, "i-1", create_before_destroy=True),
        change("key", "Cloud::Compute::KeyPair", Action.REPLACE, "k-1"),
        change("ip", FIP, Action.UPDATE, "eip-1", ("web", "key"))))
    assert nx.is_directed_acyclic_graph(g)
    assert before(g, "create:web", "update:ip") and before(g, "create:key", "update:ip")
    assert before(g, "create:web", "delete:web#i-1")
