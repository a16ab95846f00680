"""The executor's scheduling: order, parallel walk, failure skips only dependents.

The adapter here is an in-memory fake: this tests the walk's pure logic; the
real adapter is exercised against the sandbox in tests/integration.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx

from cloudtmpl.apply import Event, Executor
from cloudtmpl.model import Action, LiveResource, Placement
from cloudtmpl.plan import Change, Plan
from cloudtmpl.providers.base import CloudError
from cloudtmpl.state import StateStore
from cloudtmpl.steps import build_steps
from tests.unit.planning import (
    CATALOG,
    EMPTY,
    SNAP,
    TARGETS,
    last_specs,
    live_for,
    plan_of,
    stack,
)


class FakeAdapter:
    def __init__(self, fail: set[str] | None = None) -> None:
        self.target = TARGETS["t"]
        self.fail = fail or set()
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.n = 0

    def discover(self, region: str, kinds: frozenset[str], stack: str) -> list[LiveResource]:
        return []

    def create(
        self,
        region: str,
        kind: str,
        *,
        stack: str,
        address: str,
        name: str,
        properties: Mapping[str, Any],
        spec_hash: str,
        timeout: float,
    ) -> LiveResource:
        with self.lock:
            self.calls.append(("create", address))
            self.n += 1
            n = self.n
        if address in self.fail:
            raise CloudError(f"InvalidAMIID.NotFound: the image for {address} does not exist")
        return LiveResource(
            address,
            kind,
            f"id-{n}",
            Placement("t", region),
            name=name,
            properties=dict(properties),
            attributes={"first_address": "10.1.1.1"},
            spec_hash=spec_hash,
        )

    def update(
        self,
        live: LiveResource,
        properties: Mapping[str, Any],
        changed: frozenset[str],
        *,
        stack: str,
        spec_hash: str,
        timeout: float,
    ) -> LiveResource:
        with self.lock:
            self.calls.append(("update", live.address))
        return live

    def delete(self, live: LiveResource, *, timeout: float) -> None:
        with self.lock:
            self.calls.append(("delete", live.address))

    def request_count(self) -> int:
        return 0


def execute(
    plan: Plan, tmp_path: Path, adapter: FakeAdapter, text: str | None = None, **params: str
) -> tuple[Any, list[Event], StateStore]:
    store = StateStore.open(f"sqlite:///{tmp_path}/state.db")
    events: list[Event] = []
    st = stack(text, **params) if text is not None else stack(**params)
    with store.lock("s", "test"):
        run_id = store.begin_run("s", "apply", "test")
        result = Executor(
            plan,
            st,
            {"t": adapter},
            store,
            {"t": CATALOG},
            keys_dir=tmp_path / "keys",
            emit=events.append,
            parallelism=4,
        ).run(run_id)
        store.end_run(run_id, "succeeded" if result.ok else "failed")
    return result, events, store


def test_replace_deletes_old_before_creating_new_and_layers_order_deletes() -> None:
    plan = plan_of(stack(image="debian"), live_for(stack()))
    g = build_steps(plan)
    assert nx.is_directed_acyclic_graph(g)
    order = list(nx.topological_sort(g))
    assert order.index("delete:att#vol-1:i-1") < order.index("delete:web#i-1")
    assert order.index("delete:web#i-1") < order.index("create:web")
    assert order.index("create:web") < order.index("create:att")


def test_create_walks_dependencies_and_records_state(tmp_path: Path) -> None:
    plan = plan_of(stack(), {})
    adapter = FakeAdapter()
    result, events, store = execute(plan, tmp_path, adapter)
    assert result.ok and result.count("done") == 4
    order = [a for op, a in adapter.calls]
    assert order.index("sg") < order.index("web") < order.index("att")
    assert order.index("vol") < order.index("att")
    records = store.resources("s")
    assert sorted(records) == ["att", "sg", "vol", "web"]
    assert "s3cr3t-value" not in str(records["web"].spec)  # sealed
    entries = store.journal_entries(store.runs("s")[0].id)
    assert [(e.address, e.phase) for e in entries if e.address == "web"] == [
        ("web", "intent"),
        ("web", "done"),
    ]
    assert [e.event for e in events].count("done") == 4


def test_unchanged_resources_without_a_state_record_are_recorded(tmp_path: Path) -> None:
    # a run killed after the cloud made everything, before any record was written: the
    # next plan finds all of it unchanged (no-ops); apply records it without a call
    plan = plan_of(stack(SNAP), live_for(stack(SNAP)))
    assert {c.action for c in plan.changes} == {Action.NOOP}
    adapter = FakeAdapter()
    result, _, store = execute(plan, tmp_path, adapter, text=SNAP)
    assert result.ok and adapter.calls == []
    records = store.resources("s")
    assert sorted(records) == ["att", "sg", "vol", "web"]
    by = {c.address: c for c in plan.changes}
    for address, rec in records.items():
        prior = by[address].prior
        assert prior is not None
        assert rec.spec_hash == prior.spec_hash and rec.physical_id == prior.physical_id
    assert records["vol"].spec["deletion_policy"] == "Snapshot"  # what destroy reads later


def test_failure_skips_only_dependents(tmp_path: Path) -> None:
    plan = plan_of(stack(), {})
    adapter = FakeAdapter(fail={"web"})
    result, events, store = execute(plan, tmp_path, adapter)
    status = {s.address: s.status for s in result.steps}
    assert status == {"sg": "done", "vol": "done", "web": "failed", "att": "skipped"}
    failed = next(e for e in events if e.event == "failed")
    assert "InvalidAMIID.NotFound" in failed.message
    assert sorted(store.resources("s")) == ["sg", "vol"]
    assert not result.ok


def test_interrupt_starts_no_new_steps(tmp_path: Path) -> None:
    plan = plan_of(stack(), {})
    adapter = FakeAdapter()
    store = StateStore.open(f"sqlite:///{tmp_path}/state.db")
    stop = threading.Event()
    stop.set()
    with store.lock("s", "test"):
        run_id = store.begin_run("s", "apply", "test")
        result = Executor(
            plan,
            stack(),
            {"t": adapter},
            store,
            {"t": CATALOG},
            keys_dir=tmp_path,
            emit=lambda e: None,
            stop=stop,
        ).run(run_id)
    assert adapter.calls == []
    assert {s.status for s in result.steps} == {"skipped"}


def _group_plan(action: Action, n: int) -> Plan:
    changes = tuple(
        Change(f"g.{i}", "Cloud::Block::Volume", "Cloud::Block::Volume", action,
               Placement("t", "r1"),
               prior=LiveResource(f"g.{i}", "Cloud::Block::Volume", f"vol-{i}",
                                  Placement("t", "r1")) if action is not Action.CREATE else None)
        for i in range(n))
    return Plan("s", changes, "", "", 0, "")


def test_rolling_update_batches_respect_min_in_service_and_pause() -> None:
    policy = {"rolling_update": {"max_batch_size": 3, "min_in_service": 4, "pause_time": "PT2S"}}
    groups = {f"g.{i}": ("g", i, policy) for i in range(6)}
    g = build_steps(_group_plan(Action.REPLACE, 6), groups)
    assert nx.is_directed_acyclic_graph(g)
    pauses = sorted(n for n in g.nodes if n.startswith("pause:"))
    assert pauses == ["pause:g:rolling_update:1", "pause:g:rolling_update:2"]
    assert g.nodes[pauses[0]]["step"].seconds == 2.0
    # batches of 2 (6 members, 4 stay in service): g.0/g.1, then g.2/g.3, then g.4/g.5
    first = set(nx.ancestors(g, pauses[0]))
    assert {"create:g.0", "create:g.1", "delete:g.0#vol-0", "delete:g.1#vol-1"} <= first
    assert not {"create:g.2", "delete:g.2#vol-2"} & first
    assert nx.has_path(g, pauses[0], "delete:g.2#vol-2")
    assert nx.has_path(g, pauses[1], "create:g.5")


def test_batch_create_and_plain_groups() -> None:
    policy = {"batch_create": {"max_batch_size": 2}}
    g = build_steps(_group_plan(Action.CREATE, 5), {f"g.{i}": ("g", i, policy) for i in range(5)})
    gates = sorted(n for n in g.nodes if n.startswith("pause:"))
    assert len(gates) == 2 and g.nodes[gates[0]]["step"].op == "barrier"  # no pause_time
    g = build_steps(_group_plan(Action.CREATE, 5), {f"g.{i}": ("g", i, {}) for i in range(5)})
    assert g.number_of_edges() == 0  # no policy: all at once


# -- deletion_policy Snapshot: one delete step, snapshot first ----------------------------

class SnapshotAdapter(FakeAdapter):
    snapshot_kind = "snapshot"

    def __init__(self, snapshot_error: str = "") -> None:
        super().__init__()
        self.snapshot_error = snapshot_error

    def snapshot_volume(self, live: LiveResource, *, stack: str, timeout: float) -> str | None:
        with self.lock:
            self.calls.append(("snapshot", live.address))
        if self.snapshot_error:
            raise CloudError(self.snapshot_error)
        return f"snap-of-{live.physical_id}"


def snapshot_plan() -> Plan:
    old = stack(SNAP)
    return plan_of(stack(EMPTY), live_for(old), last=last_specs(old))


def test_snapshot_then_delete_in_one_journaled_step(tmp_path: Path) -> None:
    adapter = SnapshotAdapter()
    result, events, store = execute(snapshot_plan(), tmp_path, adapter)
    assert result.ok, result.steps
    vol = [op for op, a in adapter.calls if a == "vol"]
    assert vol == ["snapshot", "delete"]
    assert ("delete", "web") not in adapter.calls  # a server under Snapshot is kept
    entries = [e for e in store.journal_entries(store.runs("s")[0].id) if e.address == "vol"]
    assert [(e.action, e.phase) for e in entries] == [("delete", "intent"), ("delete", "done")]
    assert entries[0].detail == {"snapshot": True}
    assert entries[1].detail == {"snapshot": "snap-of-vol-1"}
    progress = [e.message for e in events if e.address == "vol" and e.event == "progress"]
    assert progress == ["deletion_policy Snapshot: taking a snapshot first",
                        "snapshot snap-of-vol-1 complete"]


def test_a_failed_snapshot_keeps_the_volume(tmp_path: Path) -> None:
    adapter = SnapshotAdapter("SnapshotLimitExceeded: Maximum number of snapshots allowed (0)")
    result, _, store = execute(snapshot_plan(), tmp_path, adapter)
    assert not result.ok
    assert [op for op, a in adapter.calls if a == "vol"] == ["snapshot"]  # never deleted
    (failed,) = [s for s in result.steps if s.status == "failed"]
    assert failed.address == "vol"
    assert failed.message == ("t/r1: the snapshot failed, so the volume is kept: "
                              "SnapshotLimitExceeded: Maximum number of snapshots allowed (0)")
    entries = [e for e in store.journal_entries(store.runs("s")[0].id) if e.address == "vol"]
    assert [e.phase for e in entries] == ["intent", "failed"]
    assert entries[1].detail == {"error": failed.message}


def test_a_target_without_snapshots_keeps_the_volume(tmp_path: Path) -> None:
    adapter = FakeAdapter()  # no snapshot_volume
    result, _, _ = execute(snapshot_plan(), tmp_path, adapter)
    (failed,) = [s for s in result.steps if s.status == "failed"]
    assert failed.address == "vol" and "cannot take volume snapshots" in failed.message
    assert ("delete", "vol") not in adapter.calls
