"""Block storage on a libcloud target: volumes, attachments, snapshots before delete.

* ``Cloud::Block::Volume`` - ``list_volumes``/``create_volume``/``destroy_volume``;
  physical id: the volume id;
* ``Cloud::Block::VolumeAttachment`` - ``attach_volume``/``detach_volume``; physical id
  ``"{volume_id}:{node_id}"``.  No cloud object: which attachment (address) joins a
  volume and a node is an attachment record (:mod:`.records`), written before
  ``attach_volume``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from cloudtmpl.libcloud_targets import driver_implements
from cloudtmpl.model import LiveResource, snapshot_name
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import ATTACHMENT, VOLUME, CloudError
from cloudtmpl.providers.libcloud import names
from cloudtmpl.providers.libcloud.client import LibcloudClient

# Where drivers keep the node(s) a volume is attached to.
_ATTACHED_KEYS = ("droplet_ids", "linode_id", "attached_to_instance", "attached_to",
                  "instance_id", "node_id", "server_id")
_READY_STATES = frozenset({"available", "inuse", "unknown", ""})  # "": not reported


def _volume_live(client: LibcloudClient, region: str, address: str, vol: Any) -> LiveResource:
    status = names.state(vol)
    return LiveResource(
        address=address,
        kind=VOLUME,
        physical_id=str(vol.id),
        placement=client.placement(region),
        name=str(vol.name),
        properties={"size": int(vol.size)} if vol.size is not None else {},
        attributes={"size": int(vol.size) if vol.size is not None else None,
                    "status": status, "name": str(vol.name)},
        status=status,
    )


def attached_nodes(vol: Any) -> list[str] | None:
    """The node ids a volume is attached to (None: the driver does not say)."""
    extra = getattr(vol, "extra", None) or {}
    for key in _ATTACHED_KEYS:
        if key in extra:
            raw = extra[key]
            values = raw if isinstance(raw, (list, tuple)) else [raw]
            return [str(v) for v in values if v not in (None, "", 0)]
    return None


def _attachment_live(client: LibcloudClient, region: str, vol: Any,
                     record: Mapping[str, Any]) -> LiveResource | None:
    node_id = str(record.get("node") or "")
    attached = attached_nodes(vol)
    if attached is not None and node_id not in attached:
        return None
    return kit.attachment_live(client.placement(region), str(record.get("address") or ""),
                               str(vol.id), node_id, spec_hash=record.get("spec"),
                               status="attached")


def _what(live: LiveResource) -> str:
    return f"{live.kind} {live.name or live.address} ({live.physical_id})"


class Volume(kit.NothingInPlace):
    kind = VOLUME
    listings = ("volumes",)

    def to_live(self, client: LibcloudClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return [_volume_live(client, region, address, vol)
                for address, vol in client.stack_items(listings.get("volumes"), stack, region)]

    def create(self, client: LibcloudClient, region: str, want: kit.Desired) -> LiveResource:
        props, address = want.properties, want.address
        if props.get("size") is None:
            raise CloudError("a volume needs size", permanent=True)
        for prop in ("volume_type", "availability_zone"):
            if props.get(prop):
                raise CloudError(f"volume {address}: {prop} is not supported on "
                                 f"{client.what()}", permanent=True)
        metadata = props.get("metadata") or {}
        driver = client.driver(region)
        cloud_name = client.cloud_name(want.name)
        kwargs: dict[str, Any] = {"size": int(props["size"]), "name": cloud_name}
        if client.has_regions and "location" in names.params(driver.create_volume):
            kwargs["location"] = client.require_location(region)
        tags = client.tag_kwargs(driver.create_volume, names.ownership(
            want.stack, address, want.spec_hash, metadata))
        if metadata and not tags:
            raise CloudError(f"volume {address}: metadata needs volume tags, which "
                             f"{client.what()} does not have", permanent=True)
        kwargs.update(tags)

        def lookup() -> Any | None:
            return next((v for v in client.driver(region).list_volumes()
                         if v.name == cloud_name), None)

        vol = kit.create_or_adopt(lambda: client.driver(region).create_volume(**kwargs),
                                  lookup, client.call)
        what = f"volume {cloud_name} ({vol.id})"

        def fetch() -> tuple[bool, str, Any]:
            found = client.find_volume(region, str(vol.id))
            if found is None:
                return False, "creating", None
            state = names.state(found)
            if state == "error":
                raise CloudError(f"{what} is in state error", permanent=True, status=state)
            return state in _READY_STATES, state, found

        return _volume_live(client, region, address, client.poll(want.timeout, what, fetch))

    def delete(self, client: LibcloudClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        vol = client.find_volume(region, live.physical_id)
        if vol is None:
            return
        client.call(lambda: client.driver(region).destroy_volume(vol))
        client.poll(timeout, _what(live), lambda: (
            client.find_volume(region, live.physical_id) is None, "deleting", None))
        with contextlib.suppress(CloudError):
            client.records.forget(live.physical_id)


class VolumeAttachment:
    kind = ATTACHMENT
    listings = ("attachment_records", "volumes")

    def to_live(self, client: LibcloudClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        records = dict(listings.get("attachment_records"))
        out = []
        for _, vol in client.stack_items(listings.get("volumes"), stack, region):
            record = records.get(str(vol.id))
            if record and record.get("stack") == stack:
                att = _attachment_live(client, region, vol, record)
                if att is not None:
                    out.append(att)
        return out

    def create(self, client: LibcloudClient, region: str, want: kit.Desired) -> LiveResource:
        props, address = want.properties, want.address
        volume_id, node_id = kit.attachment_ends(props)
        vol = client.find_volume(region, volume_id)
        node = client.find_node(region, node_id)
        if vol is None or node is None:
            missing = f"volume {volume_id}" if vol is None else f"server {node_id}"
            raise CloudError(f"attachment {address}: {missing} does not exist", permanent=True)
        attached = attached_nodes(vol)
        if attached and node_id not in attached:
            raise CloudError(f"attachment {address}: volume {volume_id} is attached to "
                             f"{', '.join(attached)}", permanent=True)
        record = {"address": address, "stack": want.stack, "node": node_id,
                  "spec": want.spec_hash}
        client.records.put(volume_id, record)  # record first: no attachment without it
        if not attached:
            driver = client.driver(region)
            kwargs: dict[str, Any] = {}
            if props.get("mountpoint") and "device" in names.params(driver.attach_volume):
                kwargs["device"] = str(props["mountpoint"])
            try:
                client.call(lambda: client.driver(region).attach_volume(node, vol, **kwargs))
            except CloudError:
                client.records.forget(volume_id)
                raise
        what = f"attachment {address} ({volume_id} → {node_id})"

        def fetch() -> tuple[bool, str, Any]:
            found = client.find_volume(region, volume_id)
            if found is None:
                raise CloudError(f"{what}: the volume vanished", permanent=True)
            nodes = attached_nodes(found)
            return nodes is None or node_id in nodes, names.state(found) or "attaching", found

        live = _attachment_live(client, region, client.poll(want.timeout, what, fetch), record)
        assert live is not None
        return live

    def update(self, client: LibcloudClient, live: LiveResource,
               change: kit.Change) -> LiveResource:
        """Only the spec changes: it is in the record."""
        volume_id = kit.attachment_of(live)[0]
        client.records.amend(volume_id, {"spec": change.spec_hash})
        return replace(live, spec_hash=change.spec_hash)

    def delete(self, client: LibcloudClient, live: LiveResource, timeout: float) -> None:
        region = live.placement.region
        volume_id, node_id = kit.attachment_of(live)
        vol = client.find_volume(region, volume_id)
        if vol is not None:
            attached = attached_nodes(vol)
            if attached is None or node_id in attached:
                client.call(lambda: client.driver(region).detach_volume(vol))

                def detached() -> tuple[bool, str, None]:
                    found = client.find_volume(region, volume_id)
                    nodes = None if found is None else attached_nodes(found)
                    return found is None or not nodes or node_id not in nodes, "detaching", None

                client.poll(timeout, _what(live), detached)
        client.records.forget(volume_id)


def snapshot_volume(client: LibcloudClient, live: LiveResource, stack: str,
                    timeout: float) -> str | None:
    """deletion_policy Snapshot through libcloud's ``create_volume_snapshot``, where the
    driver implements it (and ``list_volume_snapshots``, to find one again and wait):
    named ``<stack>.<address>@<volume id>`` (escaped like every name here); a snapshot
    of that name that is not in error is reused."""
    region = live.placement.region
    driver = client.driver(region)
    if live.kind != VOLUME or not driver_implements(
            type(driver), "create_volume_snapshot", "list_volume_snapshots"):
        raise CloudError(
            f"{client.what()} cannot snapshot a {live.kind} (its libcloud driver does not "
            "implement create_volume_snapshot and list_volume_snapshots); use "
            "deletion_policy Retain or Delete", permanent=True)
    vol = client.find_volume(region, live.physical_id)
    if vol is None:
        return None  # already gone: nothing to keep
    cloud_name = client.cloud_name(snapshot_name(stack, live.address, live.physical_id))

    def find() -> Any | None:
        return next((s for s in client.driver(region).list_volume_snapshots(vol)
                     if s.name == cloud_name and names.state(s) != "error"), None)

    snap = client.call(find) or kit.create_or_adopt(
        lambda: client.driver(region).create_volume_snapshot(vol, name=cloud_name),
        find, client.call)
    what = f"snapshot {cloud_name} ({snap.id})"

    def fetch() -> tuple[bool, str, None]:
        found = next((s for s in client.call(
            lambda: client.driver(region).list_volume_snapshots(vol)) if s.id == snap.id),
            None)
        state = "creating" if found is None else names.state(found)
        if state == "error":  # it holds nothing: deleted where the driver can
            if driver_implements(type(driver), "destroy_volume_snapshot"):
                with contextlib.suppress(Exception):
                    client.driver(region).destroy_volume_snapshot(found)
            raise CloudError(f"{what} of volume {live.physical_id} failed (state error)",
                             permanent=True, status=state)
        return state in _READY_STATES, state, None

    client.poll(timeout, what, fetch)
    return str(snap.id)
