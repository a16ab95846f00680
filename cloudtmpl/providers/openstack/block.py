"""``Cloud::Block::Volume`` and ``VolumeAttachment`` (Cinder v3), and the Cinder backup
taken under deletion_policy Snapshot.

* Volume - physical id: the volume id; marker in the volume metadata of
  ``POST /volumes`` (atomic, no window).
* Attachment - no object of its own: the volume's metadata gets
  ``cloudtmpl:attachment`` (address) and ``cloudtmpl:attachment-spec`` *before*
  the Nova attach call, so an attachment never exists without its record; a record
  without an attachment (crash between the two calls) is not reported.  Physical id
  ``"{volume}:{server}"``.  The ``mountpoint`` is not reported (Nova may choose
  another device): it is compared with the last-applied spec.
* Backup (:func:`snapshot`) - metadata ``cloudtmpl:stack``/``resource``/
  ``snapshot-of``, name ``<stack>.<address>@<id>``; never discovered, found again
  by name and volume after a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from typing import Any

from cloudtmpl.model import (
    TAG_RESOURCE,
    TAG_SPEC,
    TAG_STACK,
    LiveResource,
    snapshot_name,
)
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import ATTACHMENT, VOLUME, CloudError
from cloudtmpl.providers.openstack.client import OpenStackClient, status_of
from cloudtmpl.providers.openstack.compute import (
    find_marked,
    set_metadata,
    settled_server,
    stack_address,
)

TAG_ATTACHMENT = "cloudtmpl:attachment"
TAG_ATTACHMENT_SPEC = "cloudtmpl:attachment-spec"
GONE_STATES = frozenset({"deleting", "deleted", "error_deleting"})
# Backups (deletion_policy Snapshot): a backup still on its way or done is reused.
_LIVE_BACKUP_STATES = frozenset({"creating", "available"})
# Backup metadata needs Cinder microversion 3.43 (Queens).
BACKUP_MICROVERSION = {"OpenStack-API-Version": "volume 3.43"}


def _get(client: OpenStackClient, region: str, volume_id: str) -> dict[str, Any] | None:
    return client.get(region, "volume", f"/volumes/{volume_id}", "volume")


def _stack_volumes(listings: kit.Listings, stack: str) -> Iterator[tuple[str, Any]]:
    """(address, volume) for the volumes of ``stack`` that are not gone (by metadata)."""
    return kit.stack_items(listings.get("volumes"),
                           lambda vol: stack_address(vol, stack, GONE_STATES))


def volume_live(client: OpenStackClient, region: str, address: str,
                vol: Mapping[str, Any]) -> LiveResource:
    meta = vol.get("metadata") or {}
    status = str(vol.get("status") or "")
    name = str(vol.get("name") or vol.get("id"))
    size = int(vol.get("size") or 0)
    return LiveResource(
        address=address, kind=VOLUME, physical_id=str(vol["id"]),
        placement=client.placement(region), name=name,
        properties={"size": size, "volume_type": vol.get("volume_type"),
                    "availability_zone": vol.get("availability_zone"),
                    "metadata": kit.user_metadata(meta)},
        attributes={"size": size, "status": status, "name": name},
        spec_hash=meta.get(TAG_SPEC), status=status)


def attachment_live(client: OpenStackClient, region: str,
                    vol: Mapping[str, Any]) -> LiveResource | None:
    meta = vol.get("metadata") or {}
    address = meta.get(TAG_ATTACHMENT)
    attachments = [a for a in vol.get("attachments") or [] if a.get("server_id")]
    if not address or not attachments or vol.get("status") not in ("in-use", "detaching",
                                                                    "attaching"):
        return None
    # Nova may pick another device than the one asked for (libvirt does): the
    # mountpoint is compared with the last-applied spec, not reported.
    return kit.attachment_live(
        client.placement(region), address, str(vol["id"]), str(attachments[0]["server_id"]),
        spec_hash=meta.get(TAG_ATTACHMENT_SPEC),
        status="attached" if vol.get("status") == "in-use" else str(vol.get("status")),
        attributes={"device": attachments[0].get("device")})


def wait_volume(client: OpenStackClient, region: str, volume_id: str, timeout: float,
                what: str, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    def fetch() -> tuple[bool, str, dict[str, Any]]:
        vol = _get(client, region, volume_id)
        if vol is None:
            return False, "creating", {}
        status = str(vol.get("status") or "")
        if status.startswith("error"):
            raise CloudError(f"{what} is in state {status}", permanent=True, status=status)
        return ready(vol), status, vol

    return client.poll(timeout, what, fetch)


def _forget_attachment(client: OpenStackClient, region: str, volume_id: str) -> None:
    for key in (TAG_ATTACHMENT, TAG_ATTACHMENT_SPEC):
        client.delete_call(region, "volume", f"/volumes/{volume_id}/metadata/{key}")


class VolumeHandler:
    kind = VOLUME
    listings: tuple[str, ...] = ("volumes",)

    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return [volume_live(client, region, address, vol)
                for address, vol in _stack_volumes(listings, stack)]

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        props, name, stack, address = want.properties, want.name, want.stack, want.address
        size = props.get("size")
        if size is None:
            raise CloudError("a volume needs size", permanent=True)
        meta = {**kit.metadata(props), TAG_STACK: stack, TAG_RESOURCE: address,
                TAG_SPEC: want.spec_hash}
        body: dict[str, Any] = {"size": int(size), "name": name, "metadata": meta}
        if props.get("volume_type"):
            body["volume_type"] = str(props["volume_type"])
        if props.get("availability_zone"):
            body["availability_zone"] = str(props["availability_zone"])

        def post() -> str:
            obj = client.api(region, "volume", "/volumes", method="POST",
                             body={"volume": body}, retry=False) or {}
            return str(obj["volume"]["id"])

        volume_id = client.create_or_adopt(post, lambda: find_marked(
            client, region, "volume", "/volumes/detail", "volumes", {"name": name}, stack,
            address))
        vol = wait_volume(client, region, volume_id, want.timeout,
                          f"volume {name} ({volume_id})",
                          ready=lambda v: v.get("status") == "available")
        return volume_live(client, region, address, vol)

    def update(self, client: OpenStackClient, live: LiveResource,
               change: kit.Change) -> LiveResource:
        region = live.placement.region
        vid = live.physical_id
        vol = kit.require(_get(client, region, vid), live)
        if "size" in change.changed:
            want = int(change.properties.get("size") or 0)
            have = int(vol.get("size") or 0)
            if want < have:
                raise CloudError(
                    f"volume {live.address} ({vid}): Cinder volumes cannot shrink ({have} GiB → "
                    f"{want} GiB); the volume must be replaced", permanent=True)
            if want > have:
                if vol.get("status") != "available":
                    raise CloudError(
                        f"volume {live.address} ({vid}) can grow only while it is available "
                        f"(detached); it is {vol.get('status')}", permanent=True,
                        status=str(vol.get("status")))
                client.api(region, "volume", f"/volumes/{vid}/action", method="POST",
                           body={"os-extend": {"new_size": want}})
                vol = wait_volume(
                    client, region, vid, change.timeout, f"volume {live.address} ({vid})",
                    ready=lambda v: int(v.get("size") or 0) >= want
                    and v.get("status") == "available")
        set_metadata(client, region, "volume", f"/volumes/{vid}/metadata",
                     vol.get("metadata") or {}, change)
        now = _get(client, region, vid)
        if now is None:
            raise CloudError(f"volume {live.address} ({vid}) vanished", permanent=True)
        return volume_live(client, region, live.address, now)

    def delete(self, client: OpenStackClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        oid = live.physical_id
        what = f"{live.kind} {live.name or live.address} ({oid})"
        if not client.delete_call(region, "volume", f"/volumes/{oid}"):
            return

        def gone() -> tuple[bool, str, None]:
            vol = _get(client, region, oid)
            status = "deleted" if vol is None else str(vol.get("status"))
            if status == "error_deleting":
                raise CloudError(f"{what} failed to delete (error_deleting)",
                                 permanent=True, status=status)
            return vol is None, status, None

        client.poll(timeout, what, gone)


class AttachmentHandler:
    kind = ATTACHMENT
    listings: tuple[str, ...] = ("volumes",)

    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        found = (attachment_live(client, region, vol) for _, vol in _stack_volumes(listings, stack))
        return [att for att in found if att is not None]

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        props, address = want.properties, want.address
        volume_id, server_id = kit.attachment_ends(props)
        vol = _get(client, region, volume_id)
        if vol is None:
            raise CloudError(f"Volume {volume_id} could not be found.", permanent=True,
                             status="404")
        attached = [str(a.get("server_id")) for a in vol.get("attachments") or []
                    if a.get("server_id")]
        if attached and server_id not in attached:
            raise CloudError(f"volume {volume_id} is attached to {', '.join(attached)}",
                             permanent=True, status="409")
        if not attached:
            # Nova refuses to attach to a server still building (409); a server adopted
            # after a killed run may be in exactly that state while this runs.
            settled_server(client, region, server_id, want.timeout, f"server {server_id}")
        # Record first, then attach: no attachment ever exists without its record.
        client.api(region, "volume", f"/volumes/{volume_id}/metadata", method="POST",
                   body={"metadata": {TAG_ATTACHMENT: address,
                                      TAG_ATTACHMENT_SPEC: want.spec_hash}})
        if not attached:
            att: dict[str, Any] = {"volumeId": volume_id}
            if props.get("mountpoint"):
                att["device"] = str(props["mountpoint"])
            try:
                client.api(region, "compute", f"/servers/{server_id}/os-volume_attachments",
                           method="POST", body={"volumeAttachment": att})
            except CloudError:
                _forget_attachment(client, region, volume_id)
                raise
        what = f"attachment {address} ({volume_id} → {server_id})"
        vol = wait_volume(
            client, region, volume_id, want.timeout, what,
            ready=lambda v: v.get("status") == "in-use" and any(
                a.get("server_id") == server_id for a in v.get("attachments") or []))
        live = attachment_live(client, region, vol)
        if live is None:  # pragma: no cover - waited for exactly this
            raise CloudError(f"{what} vanished", permanent=True)
        return live

    def update(self, client: OpenStackClient, live: LiveResource,
               change: kit.Change) -> LiveResource:
        region = live.placement.region
        volume_id = kit.attachment_of(live)[0]
        client.api(region, "volume", f"/volumes/{volume_id}/metadata", method="POST",
                   body={"metadata": {TAG_ATTACHMENT_SPEC: change.spec_hash}})
        vol = kit.require(_get(client, region, volume_id), live)
        return kit.require(attachment_live(client, region, vol), live)

    def delete(self, client: OpenStackClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        volume_id, server_id = kit.attachment_of(live)
        vol = _get(client, region, volume_id)
        if vol is None:
            return
        if any(a.get("server_id") == server_id for a in vol.get("attachments") or []):
            try:
                client.delete_call(region, "compute",
                                   f"/servers/{server_id}/os-volume_attachments/{volume_id}")
            except CloudError as err:
                if status_of(err) != 409 and status_of(err) != 400:
                    raise

            def detached() -> tuple[bool, str, dict[str, Any] | None]:
                v = _get(client, region, volume_id)
                if v is None:
                    return True, "deleted", None
                still = any(a.get("server_id") == server_id for a in v.get("attachments") or [])
                return not still, str(v.get("status")), v

            found = client.poll(timeout, f"attachment {live.address} ({volume_id} → "
                                         f"{server_id})", detached)
            if found is None:
                return
            vol = found
        meta = vol.get("metadata") or {}
        if meta.get(TAG_ATTACHMENT) in (None, live.address) and (
                TAG_ATTACHMENT in meta or TAG_ATTACHMENT_SPEC in meta):
            _forget_attachment(client, region, volume_id)


def snapshot(client: OpenStackClient, live: LiveResource, *, stack: str,
             timeout: float) -> str | None:
    """deletion_policy Snapshot: a Cinder *backup* of the volume, as Heat takes.

    A Cinder snapshot depends on its volume (the volume cannot be deleted while
    it has one: "Volume still has 1 dependent snapshots"); a backup does not.
    ``POST /backups`` with ``force`` (an attached volume too) and, at microversion
    3.43, the metadata ``cloudtmpl:stack``/``resource``/``snapshot-of``; waited on
    until ``available`` (``error``: its ``fail_reason``).  A backup of this volume
    by this name that is creating or available (an ambiguous failure retried, a
    killed run) is reused.  Returns the backup id."""
    region = live.placement.region
    vid = live.physical_id
    name = snapshot_name(stack, live.address, vid)
    what = f"backup {name}"

    def find() -> str | None:
        obj = client.api(region, "volume", "/backups/detail", retry=False,
                         params={"volume_id": vid, "name": name},
                         headers=BACKUP_MICROVERSION) or {}
        for backup in obj.get("backups") or []:
            theirs = (backup.get("metadata") or {}).get(TAG_STACK, stack)
            if backup.get("name") == name and backup.get("volume_id") == vid and \
                    theirs == stack and backup.get("status") in _LIVE_BACKUP_STATES:
                return str(backup["id"])
        return None

    def post() -> str:
        body = {"volume_id": vid, "name": name, "force": True,
                "metadata": kit.snapshot_marks(stack, live),
                "description": kit.snapshot_description(stack, live)}
        obj = client.api(region, "volume", "/backups", method="POST", retry=False,
                         body={"backup": body}, headers=BACKUP_MICROVERSION) or {}
        return str(obj["backup"]["id"])

    with client.session(region):
        if _get(client, region, vid) is None:
            return None  # already gone: nothing to keep
        backup_id = client.call(find) or client.create_or_adopt(post, find)

        def fetch() -> tuple[bool, str, None]:
            backup = client.get(region, "volume", f"/backups/{backup_id}", "backup")
            status = "creating" if backup is None else str(backup.get("status") or "")
            if status == "error":  # it holds nothing: deleted, the cloud's words kept
                reason = (backup or {}).get("fail_reason") or "status error"
                with suppress(CloudError):
                    client.delete_call(region, "volume", f"/backups/{backup_id}")
                raise CloudError(f"{what} ({backup_id}) of volume {vid} failed: {reason}",
                                 permanent=True, status=status)
            return status == "available", status, None

        client.poll(timeout, f"{what} ({backup_id})", fetch)
        # Cinder puts the volume back to its status before the backup is available;
        # wait that out all the same, or the delete would find it backing-up
        wait_volume(client, region, vid, timeout, f"volume {live.address} ({vid})",
                    ready=lambda v: v.get("status") != "backing-up")
    return backup_id
