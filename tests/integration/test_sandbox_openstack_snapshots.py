"""Cinder snapshots and backups of the OpenStack sandbox, shaped by the Cinder v3 API.

Snapshots through libcloud's own ``create_volume_snapshot``/``list_volume_snapshots``
(they go to Cinder v3); backups, which libcloud does not speak, as raw requests.
"""

from __future__ import annotations

from typing import Any

import pytest
from libcloud.common.exceptions import BaseHTTPError
from libcloud.compute.types import StorageVolumeState, VolumeSnapshotState

from tests.integration.openstack_api import (
    _project_id,
    boot,
    configure,
    driver,
    http,
    token,
    wait_for,
)

pytestmark = pytest.mark.integration

MISSING = "00000000-0000-0000-0000-000000000000"
V343 = {"OpenStack-API-Version": "volume 3.43"}


def volume_path(info: dict[str, Any], rest: str) -> str:
    return f"/volume/de-fra-1/v3/{_project_id(info)}{rest}"


def available_volume(d: Any, size: int = 2) -> Any:
    vol = d.create_volume(size, "data")
    assert wait_for(lambda: d.ex_get_volume(vol.id).state == StorageVolumeState.AVAILABLE)
    return d.ex_get_volume(vol.id)


def test_snapshots_depend_on_their_volume(openstack_reset: dict[str, Any]) -> None:
    info = configure(openstack_reset, snapshot_seconds=0.2)
    assert info["snapshot_seconds"] == 0.2
    d = driver(openstack_reset)
    vol = available_volume(d)
    snap = d.create_volume_snapshot(vol, name="before", ex_description="first")
    assert snap.state == VolumeSnapshotState.CREATING and snap.extra["volume_id"] == vol.id
    assert wait_for(lambda: d.list_volume_snapshots(vol)[0].state == VolumeSnapshotState.AVAILABLE)
    (listed,) = d.list_volume_snapshots(vol)
    assert (listed.id, listed.name, listed.size) == (snap.id, "before", 2)

    tok = token(openstack_reset)
    status, _, body = http(openstack_reset, "GET", volume_path(openstack_reset, "/snapshots"),
                           token=tok)
    assert status == 200 and [s["id"] for s in body["snapshots"]] == [snap.id]
    assert "os-extended-snapshot-attributes:progress" not in body["snapshots"][0]
    status, _, body = http(openstack_reset, "GET", volume_path(
        openstack_reset, f"/snapshots/detail?volume_id={vol.id}&status=available"), token=tok)
    assert body["snapshots"][0]["os-extended-snapshot-attributes:progress"] == "100%"
    status, _, body = http(openstack_reset, "GET", volume_path(
        openstack_reset, f"/snapshots/detail?volume_id={MISSING}"), token=tok)
    assert body == {"snapshots": []}

    # as in Cinder: a volume with snapshots cannot be deleted, unless cascade
    with pytest.raises(BaseHTTPError, match="Volume still has 1 dependent snapshots") as err:
        d.destroy_volume(vol)
    assert err.value.code == 400
    status, _, _ = http(openstack_reset, "DELETE",
                        volume_path(openstack_reset, f"/volumes/{vol.id}?cascade=true"), token=tok)
    assert status == 202
    assert d.list_volumes() == [] and d.ex_list_snapshots() == []
    status, _, body = http(openstack_reset, "GET",
                           volume_path(openstack_reset, f"/snapshots/{snap.id}"), token=tok)
    assert status == 404 and body == {
        "itemNotFound": {"code": 404, "message": f"Snapshot {snap.id} could not be found."}}


def test_snapshot_rules_quota_and_delete(openstack_reset: dict[str, Any]) -> None:
    configure(openstack_reset, quota={"snapshots": 1, "gigabytes": 5})
    d = driver(openstack_reset)
    vol = available_volume(d)
    node = boot(d, "db")
    assert d.attach_volume(node, vol) is True
    with pytest.raises(BaseHTTPError, match="status must be available, but current status "
                       "is: in-use") as err:
        d.create_volume_snapshot(vol, name="no-force", ex_force=False)
    assert err.value.code == 400
    snap = d.create_volume_snapshot(vol, name="forced")  # libcloud forces by default
    with pytest.raises(BaseHTTPError, match="SnapshotLimitExceeded") as err:
        d.create_volume_snapshot(vol, name="second")
    assert err.value.code == 413
    assert wait_for(lambda: d.ex_list_snapshots()[0].state == VolumeSnapshotState.AVAILABLE)
    # snapshots count against the gigabytes quota: 2 + 2 of 5 used
    with pytest.raises(BaseHTTPError, match="exceeds allowed gigabytes quota"):
        d.create_volume(2, "more")
    assert d.destroy_volume_snapshot(snap) is True
    assert d.ex_list_snapshots() == []


def test_backups_outlive_their_volume(openstack_reset: dict[str, Any]) -> None:
    configure(openstack_reset, snapshot_seconds=0.2)
    d, info = driver(openstack_reset), openstack_reset
    vol = available_volume(d)
    tok = token(info)
    meta = {"cloudtmpl:stack": "s"}
    body = {"backup": {"volume_id": vol.id, "name": "b1", "force": True, "metadata": meta}}
    status, _, err = http(info, "POST", volume_path(info, "/backups"), body, token=tok)
    assert status == 400 and "'metadata' was unexpected" in err["badRequest"]["message"]
    status, headers, created = http(info, "POST", volume_path(info, "/backups"), body,
                                    token=tok, headers=V343)
    assert status == 202 and headers["OpenStack-API-Version"] == "volume 3.43"
    backup_id = created["backup"]["id"]
    assert created["backup"]["name"] == "b1" and created["backup"]["metadata"] == meta
    assert d.ex_get_volume(vol.id).extra["state"] == "backing-up"
    with pytest.raises(BaseHTTPError, match="Invalid volume"):
        d.destroy_volume(d.ex_get_volume(vol.id))  # not while it is backed up

    def shown(headers: dict[str, str] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = http(info, "GET", volume_path(info, f"/backups/{backup_id}"),
                                      token=tok, headers=headers)[2]["backup"]
        return result

    assert wait_for(lambda: shown()["status"] == "available")
    assert "metadata" not in shown() and shown(V343)["metadata"] == meta
    assert shown()["volume_id"] == vol.id and shown()["fail_reason"] is None
    assert d.ex_get_volume(vol.id).state == StorageVolumeState.AVAILABLE
    assert d.destroy_volume(d.ex_get_volume(vol.id)) is True  # a backup is no dependent
    status, _, listed = http(info, "GET", volume_path(info, f"/backups/detail?volume_id={vol.id}"),
                             token=tok)
    assert [b["id"] for b in listed["backups"]] == [backup_id]
    status, _, listed = http(info, "GET", volume_path(info, "/backups?name=b2"), token=tok)
    assert listed == {"backups": []}
    assert http(info, "DELETE", volume_path(info, f"/backups/{backup_id}"), token=tok)[0] == 202
    status, _, body = http(info, "GET", volume_path(info, f"/backups/{backup_id}"), token=tok)
    assert status == 404 and body["itemNotFound"]["message"] == \
        f"Backup {backup_id} could not be found."


def test_backup_failures(openstack_reset: dict[str, Any]) -> None:
    info = configure(openstack_reset, backup_fail_reason="backup driver: connection refused",
                     quota={"backups": 1})
    assert info["backup_fail_reason"] == "backup driver: connection refused"
    d, info = driver(openstack_reset), openstack_reset
    tok = token(info)
    vol = available_volume(d)
    node = boot(d, "db")
    assert d.attach_volume(node, vol) is True
    body = {"backup": {"volume_id": vol.id, "name": "b"}}
    status, _, err = http(info, "POST", volume_path(info, "/backups"), body, token=tok)
    assert status == 400 and err["badRequest"]["message"] == \
        "Invalid volume: Backing up an in-use volume must use the force flag."
    body["backup"]["force"] = True
    status, _, created = http(info, "POST", volume_path(info, "/backups"), body, token=tok)
    assert status == 202
    path = volume_path(info, f"/backups/{created['backup']['id']}")
    assert wait_for(lambda: http(info, "GET", path, token=tok)[2]["backup"]["status"] == "error")
    assert http(info, "GET", path, token=tok)[2]["backup"]["fail_reason"] == \
        "backup driver: connection refused"
    assert d.ex_get_volume(vol.id).state == StorageVolumeState.INUSE  # back as it was
    status, _, err = http(info, "POST", volume_path(info, "/backups"), body, token=tok)
    assert status == 413 and "BackupLimitExceeded" in err["overLimit"]["message"]
    status, _, err = http(info, "POST", volume_path(info, "/backups"),
                          {"backup": {"volume_id": MISSING}}, token=tok)
    assert status == 404 and err["itemNotFound"]["message"] == \
        f"Volume {MISSING} could not be found."


def test_microversions(openstack_reset: dict[str, Any]) -> None:
    info, tok = openstack_reset, token(openstack_reset)
    status, headers, _ = http(info, "GET", volume_path(info, "/volumes"), token=tok)
    assert status == 200 and "OpenStack-API-Version" not in headers
    status, _, body = http(info, "GET", volume_path(info, "/volumes"), token=tok,
                           headers={"OpenStack-API-Version": "volume 3.99"})
    assert status == 406 and body["computeFault"]["message"] == (
        "Version 3.99 is not supported by the API. Minimum is 3.0 and maximum is 3.43.")
    status, headers, _ = http(info, "GET", volume_path(info, "/volumes"), token=tok,
                              headers={"OpenStack-API-Version": "volume latest"})
    assert status == 200 and headers["OpenStack-API-Version"] == "volume 3.43"
