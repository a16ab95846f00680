"""deletion_policy Snapshot end to end: the real CLI against both sandbox clouds.

A volume under Snapshot is snapshotted before it is deleted - when it leaves the
template, when the stack is destroyed and when it is replaced - on AWS as an EBS
snapshot, on OpenStack as a Cinder backup (what Heat takes: a Cinder snapshot would
keep the volume from being deleted).  The snapshot outlives the stack and is never
one of its resources.  A failed snapshot keeps the volume; a run that stopped between
the snapshot and the delete is finished by the next one with the same snapshot.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.clitools import cli_args, cli_env, ec2, os_driver, run, tags, write
from tests.integration.openstack_api import (
    _project_id,
    configure,
    http,
    token,
    wait_for,
)

pytestmark = pytest.mark.integration

AWS_REGION = "eu-central-1"
OS_REGION = "de-fra-1"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    return tmp_path


def aws_template(volume_type: str = "gp2", *, keep: bool = True) -> str:
    data = f"""\
  data:
    type: Cloud::Block::Volume
    deletion_policy: Snapshot
    properties: {{size: 1, volume_type: {volume_type}}}
""" if keep else ""
    return f"""\
heat_template_version: 2021-04-16
placement: {{provider: sandbox-aws, region: {AWS_REGION}}}
resources:
{data}  scratch:
    type: Cloud::Block::Volume
    properties: {{size: 1}}
"""


def aws_snapshots(sandbox: dict[str, Any], stack: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ec2(sandbox, AWS_REGION).describe_snapshots(
        Filters=[{"Name": "tag:cloudtmpl:stack", "Values": [stack]}])["Snapshots"]
    return found


def aws_volumes(sandbox: dict[str, Any], stack: str) -> dict[str, str]:
    found = ec2(sandbox, AWS_REGION).describe_volumes(
        Filters=[{"Name": "tag:cloudtmpl:stack", "Values": [stack]}])["Volumes"]
    return {tags(v)["cloudtmpl:resource"]: v["VolumeId"] for v in found}


def test_aws_snapshot_on_removal_replace_and_destroy(project: Path,
                                                    aws_reset: dict[str, Any]) -> None:
    write(project / "snap.yaml", aws_template())
    assert run(project, "apply", "snap.yaml", "--yes").code == 0
    first = aws_volumes(aws_reset, "snap")["data"]

    # a replace (the type cannot change in place) snapshots the old volume first
    write(project / "snap.yaml", aws_template("gp3"))
    r = run(project, "plan", "snap.yaml", "--format", "json")
    (data,) = [c for c in r.json()["changes"] if c["address"] == "data"]
    assert data["action"] == "replace" and data["snapshot"] is True
    assert "a snapshot of the old one is taken first" in data["reason"]
    r = run(project, "apply", "snap.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert "EBS snapshot snap-" in r.out
    second = aws_volumes(aws_reset, "snap")["data"]
    assert second != first
    (snap,) = aws_snapshots(aws_reset, "snap")
    assert snap["VolumeId"] == first and snap["State"] == "completed"
    assert tags(snap) == {"Name": f"snap.data@{first}", "cloudtmpl:stack": "snap",
                          "cloudtmpl:resource": "data", "cloudtmpl:snapshot-of": first}
    assert first in snap["Description"] and "deletion_policy Snapshot" in snap["Description"]
    # the snapshot is no resource of the stack: nothing to do
    assert run(project, "plan", "snap.yaml", "--detailed-exitcode").code == 0

    # removed from the template: a delete that snapshots first (text and JSON)
    write(project / "snap.yaml", aws_template(keep=False))
    r = run(project, "plan", "snap.yaml")
    line = next(x for x in r.out.splitlines() if " data " in x)
    assert line.lstrip().startswith("-") and "a snapshot is taken first" in line, r.out
    r = run(project, "plan", "snap.yaml", "--format", "json")
    (data,) = [c for c in r.json()["changes"] if c["address"] == "data"]
    assert data["action"] == "delete" and data["snapshot"] is True
    assert run(project, "apply", "snap.yaml", "--yes").code == 0
    assert set(aws_volumes(aws_reset, "snap")) == {"scratch"}
    assert sorted(s["VolumeId"] for s in aws_snapshots(aws_reset, "snap")) == sorted(
        [first, second])

    # destroy: only the Snapshot volume is snapshotted; later runs leave the snapshots be
    write(project / "snap.yaml", aws_template("gp3"))
    assert run(project, "apply", "snap.yaml", "--yes").code == 0
    third = aws_volumes(aws_reset, "snap")["data"]
    r = run(project, "destroy", "snap.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert aws_volumes(aws_reset, "snap") == {}
    snaps = aws_snapshots(aws_reset, "snap")
    assert sorted(s["VolumeId"] for s in snaps) == sorted([first, second, third])
    assert next(s for s in snaps if s["VolumeId"] == third)["State"] == "completed"
    assert run(project, "plan", "snap.yaml", "--format", "json").json()["summary"]["delete"] == 0
    assert run(project, "destroy", "-s", "snap", "--yes").code == 0
    assert len(aws_snapshots(aws_reset, "snap")) == 3


def test_aws_a_run_stopped_after_the_snapshot_is_finished_with_it(
        project: Path, aws_reset: dict[str, Any]) -> None:
    write(project / "snap.yaml", aws_template())
    assert run(project, "apply", "snap.yaml", "--yes").code == 0
    vid = aws_volumes(aws_reset, "snap")["data"]
    client = ec2(aws_reset, AWS_REGION)
    # someone attached the volume to their own instance: the snapshot is taken, the
    # delete fails (VolumeInUse) and the volume stays, as after a kill between the two
    image = client.describe_images()["Images"][0]["ImageId"]
    iid = client.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                               Placement={"AvailabilityZone": f"{AWS_REGION}a"}
                               )["Instances"][0]["InstanceId"]
    client.attach_volume(VolumeId=vid, InstanceId=iid, Device="/dev/sdf")
    r = run(project, "destroy", "snap.yaml", "--yes")
    assert r.code == 1 and "VolumeInUse" in r.out + r.err, r.out + r.err
    (snap,) = aws_snapshots(aws_reset, "snap")
    assert snap["VolumeId"] == vid and vid in aws_volumes(aws_reset, "snap").values()
    client.detach_volume(VolumeId=vid, InstanceId=iid)
    r = run(project, "destroy", "snap.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert aws_volumes(aws_reset, "snap") == {}
    assert [s["SnapshotId"] for s in aws_snapshots(aws_reset, "snap")] == [snap["SnapshotId"]]


OS_TEMPLATE = f"""\
heat_template_version: 2021-04-16
placement: {{provider: sandbox-openstack, region: {OS_REGION}}}
resources:
  data:
    type: OS::Cinder::Volume
    deletion_policy: Snapshot
    properties: {{size: 1}}
  web:
    type: OS::Nova::Server
    deletion_policy: Snapshot
    properties: {{image: ubuntu-22.04, flavor: small}}
  att:
    type: OS::Cinder::VolumeAttachment
    properties: {{instance_uuid: {{get_resource: web}}, volume_id: {{get_resource: data}}}}
"""


def backups(info: dict[str, Any]) -> list[dict[str, Any]]:
    path = f"/volume/{OS_REGION}/v3/{_project_id(info)}/backups/detail"
    status, _, body = http(info, "GET", path, token=token(info),
                           headers={"OpenStack-API-Version": "volume 3.43"})
    assert status == 200, body
    found: list[dict[str, Any]] = body["backups"]
    return found


def images_of(info: dict[str, Any], name: str) -> list[dict[str, Any]]:
    status, _, body = http(info, "GET", f"/image/{OS_REGION}/v2/images?name={name}",
                           token=token(info))
    assert status == 200, body
    found: list[dict[str, Any]] = body["images"]
    return found


def test_openstack_backup_and_server_image_before_delete(
        project: Path, openstack_reset: dict[str, Any]) -> None:
    write(project / "ossnap.yaml", OS_TEMPLATE)
    r = run(project, "apply", "ossnap.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    d = os_driver(openstack_reset, OS_REGION)
    (vol,) = d.list_volumes()
    (node,) = d.list_nodes()

    r = run(project, "destroy", "ossnap.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert "Cinder backup" in r.out
    assert "Glance image" in r.out  # a server is imaged first, as Heat does
    assert d.list_volumes() == []
    assert d.list_nodes() == []
    (backup,) = backups(openstack_reset)
    assert backup["volume_id"] == vol.id and backup["status"] == "available"
    assert backup["name"] == f"ossnap.data@{vol.id}"
    assert backup["metadata"] == {"cloudtmpl:stack": "ossnap", "cloudtmpl:resource": "data",
                                  "cloudtmpl:snapshot-of": vol.id}
    assert d.ex_list_snapshots() == []  # a backup, not a snapshot that pins the volume
    (image,) = images_of(openstack_reset, f"ossnap.web@{node.id}")
    assert (image["status"], image["image_type"], image["instance_uuid"]) == \
        ("active", "snapshot", node.id)
    assert (image["cloudtmpl:stack"], image["cloudtmpl:resource"],
            image["cloudtmpl:snapshot-of"]) == ("ossnap", "web", node.id)
    assert image["visibility"] == "private"
    # neither a plan nor a destroy touches the backup or the image again
    r = run(project, "plan", "ossnap.yaml", "--format", "json")
    assert r.json()["summary"]["delete"] == 0
    assert run(project, "destroy", "-s", "ossnap", "--yes").code == 0
    assert [b["id"] for b in backups(openstack_reset)] == [backup["id"]]
    assert [i["id"] for i in images_of(openstack_reset, f"ossnap.web@{node.id}")] == \
        [image["id"]]


def test_openstack_failed_backup_keeps_the_volume(project: Path,
                                                  openstack_reset: dict[str, Any]) -> None:
    write(project / "ossnap.yaml", OS_TEMPLATE.replace("    deletion_policy: Snapshot\n    "
                                                       "properties: {image", "    properties: "
                                                       "{image"))
    assert run(project, "apply", "ossnap.yaml", "--yes").code == 0
    d = os_driver(openstack_reset, OS_REGION)
    (vol,) = d.list_volumes()
    configure(openstack_reset, backup_fail_reason="backup driver: Swift container is full")
    r = run(project, "destroy", "ossnap.yaml", "--yes")
    assert r.code == 1
    assert ("the snapshot failed, so the volume is kept: backup "
            f"ossnap.data@{vol.id}") in r.out, r.out
    assert "backup driver: Swift container is full" in r.out
    assert [v.id for v in d.list_volumes()] == [vol.id]  # not deleted
    assert backups(openstack_reset) == []  # the failed backup held nothing: gone
    configure(openstack_reset, backup_fail_reason="")
    r = run(project, "destroy", "ossnap.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert d.list_volumes() == [] and d.list_nodes() == []
    assert [b["volume_id"] for b in backups(openstack_reset)] == [vol.id]


def test_snapshot_on_a_type_without_snapshots_is_a_validate_diagnostic(project: Path) -> None:
    write(project / "bad.yaml", """\
heat_template_version: 2021-04-16
resources:
  net:
    type: OS::Neutron::Net
    deletion_policy: Snapshot
""")
    r = run(project, "validate", "bad.yaml", "--format", "json")
    assert r.code == 1
    (d,) = r.json()["diagnostics"]
    assert (d["code"], d["line"], d["column"]) == ("deletion-policy-unsupported", 5, 5)
    assert d["hint"] == ("Snapshot is supported for Cloud::Block::Volume / OS::Cinder::Volume; "
                         "use Retain or Delete")
    r = run(project, "plan", "bad.yaml", "--target", "sandbox-aws")
    assert r.code == 1 and "bad.yaml:5:5" in r.err and "deletion-policy-unsupported" in r.err


def test_openstack_destroy_killed_during_the_backup_reuses_it(
        project: Path, openstack_reset: dict[str, Any]) -> None:
    write(project / "ossnap.yaml", OS_TEMPLATE.replace("    deletion_policy: Snapshot\n    "
                                                       "properties: {image", "    properties: "
                                                       "{image"))
    assert run(project, "apply", "ossnap.yaml", "--yes").code == 0
    d = os_driver(openstack_reset, OS_REGION)
    (vol,) = d.list_volumes()
    configure(openstack_reset, snapshot_seconds=6)  # the backup takes a while
    proc = subprocess.Popen(cli_args("destroy", "ossnap.yaml", "--yes"), cwd=project,
                            env=cli_env({"PYTHONUNBUFFERED": "1"}), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "taking a snapshot first" in line:
                break
        assert wait_for(lambda: backups(openstack_reset), timeout=20)  # the backup started
    finally:
        proc.send_signal(signal.SIGKILL)  # mid-step: the intent is journaled, nothing else
        proc.wait()
    (backup,) = backups(openstack_reset)
    assert backup["status"] == "creating" and [v.id for v in d.list_volumes()] == [vol.id]
    configure(openstack_reset, snapshot_seconds=0.05)  # new backups would be quick now
    r = run(project, "destroy", "ossnap.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert f"Cinder backup {backup['id']} complete" in r.out  # the killed run's backup
    assert d.list_volumes() == []
    assert [b["id"] for b in backups(openstack_reset)] == [backup["id"]]
    assert backups(openstack_reset)[0]["status"] == "available"
