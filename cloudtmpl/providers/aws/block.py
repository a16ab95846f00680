"""Block storage on AWS: EBS volumes, their attachments, and snapshots before delete.

* ``Cloud::Block::Volume`` - an EBS volume; physical id: the volume id.
  ``CreateVolume`` is retried with the same ``ClientToken``; ``size`` grows in place
  (never shrinks).
* ``Cloud::Block::VolumeAttachment`` - no cloud object: the volume carries
  ``cloudtmpl:attachment`` (the attachment's address) and
  ``cloudtmpl:attachment-spec``; physical id ``"{volume_id}:{instance_id}"``.  The tags
  are written *before* ``AttachVolume``, so an attachment never exists without its
  record; a record without an attachment (crash between the two calls) is simply not
  reported.  Attachments are discovered from the volumes of the same stack only.

deletion_policy Snapshot (:func:`snapshot_volume`): ``CreateSnapshot`` with
``TagSpecification`` (``Name`` ``<stack>.<address>@<volume id>``,
``cloudtmpl:stack``/``resource``/``snapshot-of``; no ``cloudtmpl:spec``, and discovery
lists no snapshots: they are never resources of the stack), waited on until
``completed``, then the volume is deleted.  CreateSnapshot has no idempotency token:
a pending or completed snapshot of the volume by the stack is looked up first and
reused (an ambiguous failure retried, a run killed before the delete).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from typing import Any

from cloudtmpl.model import (
    TAG_SNAPSHOT_OF,
    TAG_SPEC,
    TAG_STACK,
    LiveResource,
    snapshot_name,
)
from cloudtmpl.providers import kit
from cloudtmpl.providers.aws import ec2
from cloudtmpl.providers.aws.client import AwsClient, Listed
from cloudtmpl.providers.aws.compute import settled_instance
from cloudtmpl.providers.base import ATTACHMENT, VOLUME, CloudError

_GONE_STATES = frozenset({"deleting", "deleted"})
_LIVE_ATTACHMENT_STATES = frozenset({"attaching", "attached", "busy"})


def list_volumes(client: AwsClient, region: str, stack: str) -> list[Any]:
    """The listing ``volumes``: the stack's volumes that are not gone (libcloud's)."""
    driver = client.driver(region)
    out = []
    for obj in client.paged(region, "DescribeVolumes", ec2.stack_filter(stack), 500):
        for el in ec2.items(obj, "volumeSet/item"):
            vol = driver._to_volume(el)
            if vol.extra.get("state") not in _GONE_STATES:
                out.append(vol)
    return out


def get_volume(client: AwsClient, region: str, volume_id: str) -> Any | None:
    try:
        obj = client.ec2(region, "DescribeVolumes", {"VolumeId.1": volume_id})
    except CloudError as err:
        if ec2.has_code(err, "InvalidVolume.NotFound", "InvalidVolume.Malformed"):
            return None
        raise
    found = ec2.items(obj, "volumeSet/item")
    return client.driver(region)._to_volume(found[0]) if found else None


def _wait_volume(client: AwsClient, region: str, volume_id: str, timeout: float, what: str,
                 ready: Callable[[Any], bool], status_of: Callable[[Any], str]) -> Any:
    def fetch() -> tuple[bool, str, Any]:
        vol = get_volume(client, region, volume_id)
        if vol is None:
            return False, "creating", None
        status = status_of(vol)
        if vol.extra.get("state") == "error":
            raise CloudError(f"{what} is in state error", permanent=True, status="error")
        return ready(vol), status, vol

    return client.poll(timeout, what, fetch)


class Volume(Listed):
    kind = VOLUME
    listings = ("volumes",)
    tags = staticmethod(ec2.extra_tags)

    @staticmethod
    def live(client: AwsClient, region: str, address: str, vol: Any) -> LiveResource:
        tags = vol.extra.get("tags") or {}
        status = vol.extra.get("state") or ""
        name = tags.get(ec2.TAG_NAME) or vol.id
        return LiveResource(
            address=address,
            kind=VOLUME,
            physical_id=vol.id,
            placement=client.placement(region),
            name=name,
            properties={
                "size": int(vol.size),
                "volume_type": vol.extra.get("volume_type"),
                "availability_zone": vol.extra.get("zone"),
                "metadata": ec2.user_tags(tags),
            },
            attributes={"size": int(vol.size), "status": status, "name": name},
            spec_hash=tags.get(TAG_SPEC),
            status=status,
        )

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        props, name = want.properties, want.name
        size = props.get("size")
        if size is None:
            raise CloudError("a volume needs size", permanent=True)
        zone = str(props.get("availability_zone") or f"{region}a")
        tags = {**ec2.identity_tags(name, want.stack, want.address, want.spec_hash),
                **ec2.metadata(props)}
        params = {"Size": str(int(size)), "AvailabilityZone": zone,
                  "ClientToken": uuid.uuid4().hex, **ec2.tag_spec("volume", tags)}
        if props.get("volume_type"):
            params["VolumeType"] = str(props["volume_type"])
        obj = client.ec2(region, "CreateVolume", params)
        volume_id = ec2.text(obj, "volumeId") or ""
        vol = _wait_volume(client, region, volume_id, want.timeout,
                           f"volume {name} ({volume_id})",
                           ready=lambda v: v.extra.get("state") == "available",
                           status_of=lambda v: v.extra.get("state") or "")
        return self.live(client, region, want.address, vol)

    def update(self, client: AwsClient, live: LiveResource, change: kit.Change) -> LiveResource:
        region = live.placement.region
        vid = live.physical_id
        vol = kit.require(get_volume(client, region, vid), live)
        if "size" in change.changed:
            want = int(change.properties.get("size") or 0)
            have = int(vol.size)
            if want < have:
                raise CloudError(
                    f"volume {live.address} ({vid}): EBS volumes cannot shrink ({have} GiB → "
                    f"{want} GiB); the volume must be replaced", permanent=True)
            if want > have:
                client.call(lambda: client.driver(region).ex_modify_volume(
                    vol, {"Size": str(want)}))
                vol = _wait_volume(client, region, vid, change.timeout,
                                   f"volume {live.address} ({vid})",
                                   ready=lambda v: int(v.size) >= want,
                                   status_of=lambda v: f"{v.size} GiB, resizing")
        client.retag(region, vid, ec2.extra_tags(vol), change)
        return self.live(client, region, live.address,
                         kit.require(get_volume(client, region, vid), live))

    def delete(self, client: AwsClient, live: LiveResource, timeout: float) -> None:
        region, vid = live.placement.region, live.physical_id
        client.delete_and_wait(region, "DeleteVolume", {"VolumeId": vid}, "InvalidVolume.NotFound",
                               get=lambda: get_volume(client, region, vid), state="state",
                               gone="deleted", timeout=timeout,
                               what=f"volume {live.name or live.address} ({vid})")


class VolumeAttachment:
    kind = ATTACHMENT
    listings = ("volumes",)

    def to_live(self, client: AwsClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        found = (self.live(client, region, vol) for _, vol
                 in ec2.stack_items(listings.get("volumes"), stack, ec2.extra_tags))
        return [att for att in found if att is not None]

    @staticmethod
    def live(client: AwsClient, region: str, vol: Any) -> LiveResource | None:
        tags = vol.extra.get("tags") or {}
        address = tags.get(ec2.TAG_ATTACHMENT)
        instance = vol.extra.get("instance_id")
        att_status = vol.extra.get("attachment_status") or ""
        if not address or not instance or att_status not in _LIVE_ATTACHMENT_STATES:
            return None
        return kit.attachment_live(client.placement(region), address, vol.id, instance,
                                   spec_hash=tags.get(ec2.TAG_ATTACHMENT_SPEC),
                                   status=att_status,
                                   more={"mountpoint": vol.extra.get("device")})

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        props, address = want.properties, want.address
        volume_id, instance_id = kit.attachment_ends(props)
        device = str(props.get("mountpoint") or "/dev/sdh")
        vol = get_volume(client, region, volume_id)
        if vol is None:
            raise CloudError(f"InvalidVolume.NotFound: The volume '{volume_id}' does not exist.",
                             permanent=True)
        attached_to = vol.extra.get("instance_id")
        if attached_to and attached_to != instance_id:
            raise CloudError(f"VolumeInUse: volume {volume_id} is attached to {attached_to}",
                             permanent=True)
        if not attached_to:
            settled_instance(client, region, instance_id, want.timeout, f"server {instance_id}")
        # Record first, then attach: no attachment ever exists without its record.
        client.create_tags(region, volume_id, {ec2.TAG_ATTACHMENT: address,
                                               ec2.TAG_ATTACHMENT_SPEC: want.spec_hash})
        if not attached_to:
            try:
                client.ec2(region, "AttachVolume",
                           {"VolumeId": volume_id, "InstanceId": instance_id, "Device": device})
            except CloudError:
                self._forget(client, region, volume_id)
                raise
        vol = _wait_volume(
            client, region, volume_id, want.timeout,
            f"attachment {address} ({volume_id} → {instance_id})",
            ready=lambda v: (v.extra.get("state") == "in-use"
                             and v.extra.get("attachment_status") == "attached"),
            status_of=lambda v: v.extra.get("attachment_status") or v.extra.get("state") or "")
        live = self.live(client, region, vol)
        if live is None:  # pragma: no cover - waited for exactly this
            raise CloudError(f"attachment {address} vanished", permanent=True)
        return live

    @staticmethod
    def _forget(client: AwsClient, region: str, volume_id: str) -> None:
        try:
            client.delete_tags(region, volume_id, [ec2.TAG_ATTACHMENT, ec2.TAG_ATTACHMENT_SPEC])
        except CloudError as err:
            if not ec2.has_code(err, "InvalidVolume.NotFound"):
                raise

    def update(self, client: AwsClient, live: LiveResource, change: kit.Change) -> LiveResource:
        region = live.placement.region
        volume_id = kit.attachment_of(live)[0]
        client.create_tags(region, volume_id, {ec2.TAG_ATTACHMENT_SPEC: change.spec_hash})
        vol = kit.require(get_volume(client, region, volume_id), live)
        return kit.require(self.live(client, region, vol), live)

    def delete(self, client: AwsClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        volume_id, instance_id = kit.attachment_of(live)
        vol = get_volume(client, region, volume_id)
        if vol is None:
            return
        if vol.extra.get("instance_id") == instance_id and \
                vol.extra.get("attachment_status") in _LIVE_ATTACHMENT_STATES:
            try:
                client.ec2(region, "DetachVolume",
                           {"VolumeId": volume_id, "InstanceId": instance_id})
            except CloudError as err:
                if not ec2.has_code(err, "IncorrectState", "InvalidAttachment.NotFound",
                                    "InvalidVolume.NotFound"):
                    raise

            def detached() -> tuple[bool, str, None]:
                v = get_volume(client, region, volume_id)
                if v is None:
                    return True, "deleted", None
                if v.extra.get("instance_id") == instance_id:
                    return False, v.extra.get("attachment_status") or "detaching", None
                return True, v.extra.get("state") or "", None

            client.poll(timeout, f"attachment {live.address} ({volume_id} → {instance_id})",
                        detached)
        tags = vol.extra.get("tags") or {}
        if tags.get(ec2.TAG_ATTACHMENT) in (None, live.address):
            self._forget(client, region, volume_id)


def snapshot_volume(client: AwsClient, live: LiveResource, stack: str,
                    timeout: float) -> str | None:
    """deletion_policy Snapshot: an EBS snapshot of the volume (``CreateSnapshot``,
    tagged in the call), waited on until ``completed``.  CreateSnapshot has no
    idempotency token: a snapshot of this volume by this stack that is pending or
    completed (an ambiguous failure retried, or a killed run) is reused."""
    if live.kind != VOLUME:
        raise CloudError(f"the aws provider cannot snapshot {live.kind}", permanent=True)
    region = live.placement.region
    vid = live.physical_id
    name = snapshot_name(stack, live.address, vid)
    tags = {ec2.TAG_NAME: name, **kit.snapshot_marks(stack, live)}
    what = f"snapshot {name}"

    def find(retry: bool) -> str | None:
        obj = client.ec2(region, "DescribeSnapshots", {
            "Owner.1": "self",
            **ec2.filters({"volume-id": vid, f"tag:{TAG_SNAPSHOT_OF}": vid,
                           f"tag:{TAG_STACK}": stack})}, retry=retry)
        for el in ec2.items(obj, "snapshotSet/item"):
            if ec2.text(el, "status") != "error":  # a failed one is no snapshot
                return ec2.text(el, "snapshotId")
        return None

    def post() -> str | None:
        try:
            obj = client.ec2(region, "CreateSnapshot", {
                "VolumeId": vid, **ec2.tag_spec("snapshot", tags),
                "Description": kit.snapshot_description(stack, live)},
                retry=False)
        except CloudError as err:
            if ec2.has_code(err, "InvalidVolume.NotFound"):
                return None  # already gone: nothing to keep
            raise
        return ec2.text(obj, "snapshotId") or ""

    snap_id = find(retry=True) or kit.create_or_adopt(post, lambda: find(retry=False),
                                                      client.call)
    if not snap_id:
        return None

    def fetch() -> tuple[bool, str, None]:
        try:
            obj = client.ec2(region, "DescribeSnapshots", {"SnapshotId.1": snap_id})
        except CloudError as err:
            if ec2.has_code(err, "InvalidSnapshot.NotFound"):  # eventual consistency
                return False, "pending", None
            raise
        found = ec2.items(obj, "snapshotSet/item")
        status = (ec2.text(found[0], "status") or "") if found else "pending"
        if status == "error":  # it holds nothing: deleted, the cloud's words kept
            message = ec2.text(found[0], "stateMessage") or "state error"
            with contextlib.suppress(CloudError):
                client.ec2(region, "DeleteSnapshot", {"SnapshotId": snap_id})
            raise CloudError(f"{what} ({snap_id}) of volume {vid} failed: {message}",
                             permanent=True, status=status)
        progress = ec2.text(found[0], "progress") if found else None
        return status == "completed", f"{status} {progress or ''}".strip(), None

    client.poll(timeout, f"{what} ({snap_id})", fetch)
    return snap_id
