"""deletion_policy Snapshot on a server: imaged before delete where the cloud can
(OpenStack), kept elsewhere (AWS), as ``plan.snapshots`` and ``plan.removal`` decide."""

from __future__ import annotations

from cloudtmpl import resources
from cloudtmpl.catalog import Catalog
from cloudtmpl.desired import POLICY
from cloudtmpl.model import Action, LiveResource, Placement
from cloudtmpl.plan import removal, snapshots

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
