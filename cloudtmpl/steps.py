"""The steps of a plan and their order: one graph of what must finish before what.

A change becomes one or more steps (a replacement: create, move what points at the
old resource, drain, delete - or the reverse without ``create_before_destroy``;
lifecycle hooks; a rolling update's batches), with edges from the plan's dependency
order.  :class:`cloudtmpl.apply.Executor` walks this graph; ``cloudtmpl apply``'s
progress counts its nodes.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx

from cloudtmpl import resources
from cloudtmpl.model import Action
from cloudtmpl.plan import Change, Plan


@dataclass(frozen=True)
class Step:
    id: str
    op: str  # create, update, delete; pause (waits), barrier (orders, does nothing)
    change: Change | None
    seconds: float = 0.0  # pause
    check: Mapping[str, Any] | None = None  # gate: a health check of the batch before
    watch: tuple[str, ...] = ()  # gate: the addresses it checks

    @property
    def address(self) -> str:
        return self.change.address if self.change is not None else self.id


def build_steps(plan: Plan, groups: Mapping[str, tuple[str, int, Mapping[str, Any]]] | None = None
                ) -> nx.DiGraph:
    """The step graph: edge u -> v means step v waits for step u.

    ``groups`` maps an address to (group, member index, the group's update_policy):
    creates of a group honour ``batch_create``, updates and replacements
    ``rolling_update`` (``max_batch_size``, ``min_in_service``, ``pause_time``).
    """
    g = nx.DiGraph()
    by_address: dict[str, str] = {}  # address -> id of its create/update step
    deletes: list[Step] = []
    for change in plan.changes:
        if change.action is Action.NOOP:
            continue
        if change.action in (Action.DELETE, Action.REPLACE):
            step = Step(f"delete:{change.key}", "delete", change)
            g.add_node(step.id, step=step)
            deletes.append(step)
        if change.action in (Action.CREATE, Action.UPDATE, Action.REPLACE):
            op = "update" if change.action is Action.UPDATE else "create"
            step = Step(f"{op}:{change.address}", op, change)
            g.add_node(step.id, step=step)
            by_address[change.address] = step.id
            if change.action is Action.REPLACE:
                if change.hooks.get("create_before_destroy"):  # the new one is up first
                    g.add_edge(step.id, f"delete:{change.key}")
                else:
                    g.add_edge(f"delete:{change.key}", step.id)
    first = {c.address: c.key for c in plan.changes
             if c.action is Action.REPLACE and c.hooks.get("create_before_destroy")}
    moves: list[tuple[str, str]] = []
    for change in plan.changes:
        own = by_address.get(change.address)
        if own is None:
            continue
        for dep in change.depends_on:
            if dep in by_address:
                g.add_edge(by_address[dep], own)
            if dep in first and change.action is Action.UPDATE:
                moves.append((own, f"delete:{first[dep]}"))
    # Old resources go from the highest creation layer down (attachments before
    # servers before volumes), which holds even when the old template is gone.  A
    # barrier between layers keeps that linear in the number of deletes.
    layers: dict[int, list[str]] = {}
    for d in deletes:
        assert d.change is not None
        kind = d.change.prior.kind if d.change.prior else d.change.kind
        layers.setdefault(resources.TYPES[kind].layer, []).append(d.id)
    order = sorted(layers, reverse=True)
    for upper, lower in itertools.pairwise(order):
        barrier = f"barrier:delete-layer-{upper}"
        g.add_node(barrier, step=Step(barrier, "barrier", None))
        for node in layers[upper]:
            g.add_edge(node, barrier)
        for node in layers[lower]:
            g.add_edge(barrier, node)
    # A replacement that cannot come up first (it needs what only the old one's removal
    # frees: a replaced security group of the same name that the old server holds) is
    # replaced delete-first, as without create_before_destroy, not deadlocked.
    ahead = dict(first)
    while True:  # until no replacement is left that must wait for its own delete
        for address, key in list(ahead.items()):
            create, delete = f"create:{address}", f"delete:{key}"
            g.remove_edge(create, delete)
            if nx.has_path(g, delete, create):
                g.add_edge(delete, create)
                del ahead[address]
                break
            g.add_edge(create, delete)
        else:
            break
    # create_before_destroy: what points at the old resource (an in-place update of a
    # dependent: a floating IP's association, a load balancer's members, a record's
    # value) moves to the new one after it is up and before the old one is drained
    # (its drain hook copies these edges) and deleted, so the address never points at
    # nothing.  Never at the price of a cycle: then the update only waits for the create.
    for own, old in moves:
        if not nx.has_path(g, old, own):
            g.add_edge(own, old)
    _hooks(g, deletes)
    _batches(g, groups or {})
    return g


def _hooks(g: nx.DiGraph, deletes: list[Step]) -> None:
    """A server's drain hook runs before it is deleted, and, when the stack is being
    taken down, before anything that reaches it (its floating IP) is deleted.  When it
    is replaced, the drain runs after what points at it moved to the replacement and
    before its replaced dependents (a volume attachment: the drain still has its
    volumes) are taken from it."""
    for d in deletes:
        assert d.change is not None
        which = "pre_replace" if d.change.action is Action.REPLACE else "pre_delete"
        if not isinstance(d.change.hooks.get(which), Mapping):
            continue
        hook = f"hook:{d.change.key}"
        g.add_node(hook, step=Step(hook, "hook", d.change))
        for pred in list(g.predecessors(d.id)):
            if not g.nodes[pred]["step"].id.startswith("barrier:"):
                g.add_edge(pred, hook)  # e.g. the replacement is up first
        g.add_edge(hook, d.id)
        if d.change.action is Action.REPLACE:
            for other in deletes:
                if other.change is not None and other.change.action is Action.REPLACE \
                        and d.change.address in other.change.depends_on \
                        and not nx.has_path(g, other.id, hook):
                    g.add_edge(hook, other.id)
        if d.change.action is Action.DELETE:
            for other in deletes:
                if other is not d and other.change is not None \
                        and other.change.action is Action.DELETE:
                    g.add_edge(hook, other.id)


def _batches(g: nx.DiGraph, groups: Mapping[str, tuple[str, int, Mapping[str, Any]]]) -> None:
    """Order a group's member steps in batches, as its update_policy asks."""
    members: dict[tuple[str, str], dict[int, list[str]]] = {}
    policies: dict[tuple[str, str], Mapping[str, Any]] = {}
    sizes: dict[str, set[int]] = {}
    for group, index, _ in groups.values():
        sizes.setdefault(group, set()).add(index)
    for node in list(g.nodes):
        step: Step = g.nodes[node]["step"]
        if step.change is None or step.change.address not in groups:
            continue
        group, index, policy = groups[step.change.address]
        which = "batch_create" if step.change.action is Action.CREATE else "rolling_update"
        settings = policy.get(which)
        if not isinstance(settings, Mapping):
            continue
        members.setdefault((group, which), {}).setdefault(index, []).append(node)
        policies[(group, which)] = settings
    for (group, which), by_index in sorted(members.items()):
        settings = policies[(group, which)]
        size = int(settings.get("max_batch_size") or 1)
        if which == "rolling_update":
            in_service = int(settings.get("min_in_service") or 0)
            size = min(size, max(1, len(sizes[group]) - in_service))
        pause = _seconds(settings.get("pause_time"))
        indexes = sorted(by_index)
        batches = [indexes[i:i + size] for i in range(0, len(indexes), size)]
        check = settings.get("health_check") if which == "rolling_update" else None
        for k in range(1, len(batches)):
            gate = f"pause:{group}:{which}:{k}"
            watch = tuple(sorted({g.nodes[n]["step"].change.address
                                  for index in batches[k - 1] for n in by_index[index]}))
            op = "gate" if isinstance(check, Mapping) else "pause" if pause else "barrier"
            g.add_node(gate, step=Step(gate, op, None, pause,
                                        check if isinstance(check, Mapping) else None, watch))
            for index in batches[k - 1]:
                for node in by_index[index]:
                    g.add_edge(node, gate)
            for index in batches[k]:
                for node in by_index[index]:
                    g.add_edge(gate, node)


def _seconds(value: Any) -> float:
    """Heat's pause_time: seconds, or an ISO 8601 duration like PT1M30S."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?", value.strip())
        if match:
            h, m, s = (float(x) if x else 0.0 for x in match.groups())
            return h * 3600 + m * 60 + s
        try:
            return float(value)
        except ValueError:
            return 0.0
    return 0.0
