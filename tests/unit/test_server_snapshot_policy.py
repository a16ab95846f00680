"""deletion_policy Snapshot on a server: imaged before delete where the cloud can
(OpenStack), kept elsewhere (AWS), as ``deletion.snapshots`` and ``plan.removal`` decide."""

from __future__ import annotations

from dataclasses import replace

from cloudtmpl import resources
from cloudtmpl.catalog import Catalog
from cloudtmpl.deletion import snapshots
from cloudtmpl.desired import POLICY
from cloudtmpl.model import Action, LiveResource, Placement
from cloudtmpl.plan import make_plan, removal
from tests.unit.planning import CATALOG, discovery, live_for, stack
from tests.unit.test_plan import SNAP

SERVER = resources.SERVER.kind
VOLUME = resources.VOLUME.kind


def test_which_kinds_are_snapshotted_on_which_cloud() -> None:
    assert snapshots(SERVER, "Snapshot", cloud="openstack")
    assert not snapshots(SERVER, "Snapshot", cloud="aws")
    assert not snapshots(SERVER, "Snapshot", cloud="libcloud")
    assert not snapshots(SERVER, "Snapshot")
    assert not snapshots(SERVER, "Retain", "Delete", cloud="openstack")
    assert snapshots(VOLUME, "Snapshot", cloud="aws") and snapshots(VOLUME, "Snapshot")
    assert not snapshots(resources.KEYPAIR.kind, "Snapshot", cloud="openstack")


def _removed(cloud: str) -> tuple[Action, bool, str]:
    live = LiveResource("web", SERVER, "srv-1", Placement("t", "r1"))
    catalogs = {"t": Catalog(name="t", type=cloud)}
    change = removal(live, {POLICY: "Snapshot"}, "no longer in the template", catalogs)
    return change.action, change.snapshot, change.reason


def test_a_removed_server_under_snapshot_is_imaged_on_openstack_and_kept_on_aws() -> None:
    action, snap, reason = _removed("openstack")
    assert (action, snap) == (Action.DELETE, True)
    assert "an image of it is taken first and kept" in reason
    action, snap, reason = _removed("aws")
    assert (action, snap) == (Action.NOOP, False)
    assert "cannot snapshot a Cloud::Compute::Server: kept, as with Retain" in reason


def test_a_replaced_server_under_snapshot_is_imaged_first_on_openstack() -> None:
    openstack = {"t": replace(CATALOG, type="openstack")}
    plan = make_plan(stack(SNAP, image="debian"), discovery(live_for(stack(SNAP))), {},
                     openstack, state_serial=3)
    web = next(c for c in plan.changes if c.address == "web")
    assert (web.action, web.snapshot) == (Action.REPLACE, True)
    assert web.reason.endswith("deletion_policy Snapshot: an image of the old server is "
                               "taken first and kept")
