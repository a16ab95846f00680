"""Cinder's state: volumes, their status transitions, snapshots and backups.

A new volume is ``creating`` for ``volume_seconds`` then ``available``; Nova's
``os-volume_attachments`` makes it ``in-use`` (see :func:`attach`).  Deleting an
attached or still-creating volume is a 400 ``badRequest``; extending grows an
``available`` volume.  Snapshots and backups are ``creating`` for
``snapshot_seconds``, then ``available``.  As in Cinder, a snapshot lives on its
volume: a volume with snapshots cannot be deleted ("Volume still has 1 dependent
snapshots") unless cascading, which deletes them with it; snapshots count against
the ``gigabytes`` quota.  A backup does not depend on its volume, which is
``backing-up`` while the backup is made; the knob ``backup_fail_reason`` makes new
backups end in ``error`` with that ``fail_reason``.  An attached volume needs
``force`` for either.  Refusals are raised as :class:`~.core.ApiError`; the wire
(routes, views, microversions) is :mod:`.volume_responses`.
"""

from __future__ import annotations

from typing import Any

from .core import JSON, fault, iso, new_id, now
from .identity import PROJECT_ID, USER_ID
from .state import Region, Store

ZONE = "nova"
TYPES: dict[str, JSON] = {
    name: {
        "id": tid,
        "name": name,
        "description": desc,
        "is_public": True,
        "extra_specs": {},
        "os-volume-type-access:is_public": True,
        "qos_specs_id": None,
    }
    for name, tid, desc in (
        ("__DEFAULT__", "7b3c5e58-1f7d-4e2a-9a6b-0d3c2f1e0001", "Default Volume Type"),
        ("standard", "7b3c5e58-1f7d-4e2a-9a6b-0d3c2f1e0002", "Replicated HDD"),
        ("ssd", "7b3c5e58-1f7d-4e2a-9a6b-0d3c2f1e0003", "Local NVMe"),
    )
}


def settle(volume: JSON) -> JSON:
    """Move a volume on once its creation (or a backup of it) time has passed."""
    if volume["status"] == "creating" and now() >= volume["_ready_at"]:
        volume["status"] = "available"
    if volume["status"] == "backing-up" and now() >= volume.get("_backed_up_at", 0.0):
        volume["status"] = volume.pop("_previous_status", "available")
    return volume


def get(region: Region, volume_id: str) -> JSON:
    volume = region.volumes.get(volume_id)
    if volume is None:
        raise fault(404, f"Volume {volume_id} could not be found.")
    return settle(volume)


def attach(volume: JSON, server_id: str, device: str) -> JSON:
    attachment = {
        "id": volume["id"],
        "attachment_id": new_id(),
        "volume_id": volume["id"],
        "server_id": server_id,
        "host_name": None,
        "device": device,
        "attached_at": iso(now(), micro=True),
    }
    volume.update(
        {"status": "in-use", "attachments": [attachment], "updated_at": iso(now(), micro=True)}
    )
    return attachment


def detach(volume: JSON) -> None:
    if volume["status"] == "backing-up":  # back to available once the backup is done
        volume["_previous_status"] = "available"
        volume.update({"attachments": [], "updated_at": iso(now(), micro=True)})
        return
    volume.update({"status": "available", "attachments": [], "updated_at": iso(now(), micro=True)})


# --------------------------------------------------------------------------- volumes


def create_volume(store: Store, region: Region, spec: JSON) -> JSON:
    try:
        size = int(spec.get("size"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise fault(
            400, f"Invalid input received: 'size' must be an integer, got {spec.get('size')!r}"
        ) from None
    if size < 1:
        raise fault(400, "Invalid input received: Volume size must be greater than 0")
    vtype = spec.get("volume_type") or "__DEFAULT__"
    found = TYPES.get(vtype) or next((t for t in TYPES.values() if t["id"] == vtype), None)
    if found is None:
        raise fault(404, f"Volume type with name {vtype} could not be found.")
    zone = spec.get("availability_zone") or ZONE
    if zone != ZONE:
        raise fault(400, f"Invalid input received: Availability zone '{zone}' is invalid.")
    limit = store.knobs.quota["volumes"]
    if len(region.volumes) + 1 > limit:
        raise fault(
            413,
            f"VolumeLimitExceeded: Maximum number of volumes allowed ({limit}) "
            "exceeded for quota 'volumes'.",
            retryAfter="0",
        )
    check_gigabytes(store, region, size)
    metadata = spec.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise fault(400, "Invalid input received: metadata must be a dict")
    ts = iso(now(), micro=True)
    volume = {
        "id": new_id(),
        "name": spec.get("name"),
        "description": spec.get("description"),
        "size": size,
        "status": "creating",
        "attachments": [],
        "availability_zone": zone,
        "bootable": "false",
        "encrypted": False,
        "multiattach": False,
        "metadata": {str(k): str(v) for k, v in metadata.items()},
        "volume_type": found["name"],
        "snapshot_id": spec.get("snapshot_id"),
        "source_volid": spec.get("source_volid"),
        "consistencygroup_id": None,
        "replication_status": None,
        "user_id": USER_ID,
        "os-vol-tenant-attr:tenant_id": PROJECT_ID,
        "created_at": ts,
        "updated_at": None,
        "_ready_at": now() + store.knobs.volume_seconds,
    }
    region.volumes[volume["id"]] = volume
    return volume


def check_gigabytes(store: Store, region: Region, size: int) -> None:
    used = sum(v["size"] for v in region.volumes.values()) + sum(
        s["size"] for s in region.snapshots.values())
    limit = store.knobs.quota["gigabytes"]
    if used + size > limit:
        raise fault(
            413,
            "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed "
            f"gigabytes quota. Requested {size}G, quota is {limit}G and {used}G has been consumed.",
            retryAfter="0",
        )


def update_volume(volume: JSON, spec: JSON) -> None:
    for key in ("name", "description", "metadata"):
        if key in spec:
            volume[key] = spec[key]
    volume["updated_at"] = iso(now(), micro=True)


def delete_volume(region: Region, volume: JSON, cascade: bool) -> None:
    """Delete ``volume`` (and, with ``cascade``, its snapshots)."""
    if volume["status"] not in ("available", "error") or volume["attachments"]:
        raise fault(
            400,
            "Invalid volume: Volume status must be available or error or error_restoring or "
            "error_extending or error_managing and must not be migrating, attached, belong to a "
            "group, have snapshots, awaiting a transfer, or be disassociated from snapshots after "
            "volume transfer.",
        )
    dependents = [settle_snapshot(s) for s in region.snapshots.values()
                  if s["volume_id"] == volume["id"]]
    if dependents and not cascade:
        raise fault(400, f"Invalid volume: Volume still has {len(dependents)} dependent "
                    "snapshots.")
    busy = [s for s in dependents if s["status"] not in ("available", "error")]
    if busy:
        raise fault(400, f"Invalid volume: Snapshot {busy[0]['id']} of the volume is "
                    f"{busy[0]['status']}: it cannot be deleted with the volume.")
    for snap in dependents:
        del region.snapshots[snap["id"]]
    del region.volumes[volume["id"]]


def act(store: Store, region: Region, volume: JSON, body: JSON) -> None:
    """A volume action; only ``os-extend`` is offered."""
    if "os-extend" not in body:
        raise fault(400, f"There is no such action: {', '.join(body) or 'None'}")
    try:
        new_size = int(body["os-extend"]["new_size"])
    except (KeyError, TypeError, ValueError):
        raise fault(400, "Invalid input for field/attribute os-extend.") from None
    if volume["status"] != "available":
        raise fault(
            400,
            "Invalid volume: Volume status must be 'available' to extend, "
            f"but current status is: {volume['status']}.",
        )
    if new_size <= volume["size"]:
        raise fault(
            400,
            "Invalid input received: New size for extend must be greater than current size. "
            f"(current: {volume['size']}, extended: {new_size}).",
        )
    check_gigabytes(store, region, new_size - volume["size"])
    volume.update({"size": new_size, "updated_at": iso(now(), micro=True)})


# ------------------------------------------------------------------------- snapshots


def flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes", "y", "on")


def settle_snapshot(snap: JSON) -> JSON:
    if snap["status"] == "creating" and now() >= snap["_ready_at"]:
        snap.update({"status": "available", "os-extended-snapshot-attributes:progress": "100%"})
    return snap


def get_snapshot(region: Region, snapshot_id: str) -> JSON:
    snap = region.snapshots.get(snapshot_id)
    if snap is None:
        raise fault(404, f"Snapshot {snapshot_id} could not be found.")
    return settle_snapshot(snap)


def _metadata_of(spec: JSON, what: str) -> dict[str, str]:
    metadata = spec.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise fault(400, f"Invalid input for field/attribute metadata. Value: {metadata!r}. "
                    f"{what} metadata must be a dict")
    return {str(k): str(v) for k, v in metadata.items()}


def create_snapshot(store: Store, region: Region, spec: JSON) -> JSON:
    volume = get(region, str(spec.get("volume_id")))
    force = flag(spec.get("force", False))
    if not force and volume["status"] != "available":
        raise fault(400, f"Invalid volume: Volume {volume['id']} status must be available, "
                    f"but current status is: {volume['status']}.")
    if volume["status"] not in ("available", "in-use"):
        raise fault(400, f"Invalid volume: Volume {volume['id']} status must be available or "
                    f"in-use, but current status is: {volume['status']}.")
    metadata = _metadata_of(spec, "Snapshot")
    limit = store.knobs.quota["snapshots"]
    if len(region.snapshots) + 1 > limit:
        raise fault(413, f"SnapshotLimitExceeded: Maximum number of snapshots allowed ({limit}) "
                    "exceeded for quota 'snapshots'.", retryAfter="0")
    check_gigabytes(store, region, volume["size"])
    snap = {
        "id": new_id(),
        "name": spec.get("name"),
        "description": spec.get("description"),
        "volume_id": volume["id"],
        "size": volume["size"],
        "status": "creating",
        "metadata": metadata,
        "user_id": USER_ID,
        "created_at": iso(now(), micro=True),
        "updated_at": None,
        "os-extended-snapshot-attributes:progress": "0%",
        "os-extended-snapshot-attributes:project_id": PROJECT_ID,
        "_ready_at": now() + store.knobs.snapshot_seconds,
    }
    region.snapshots[snap["id"]] = snap
    return snap


def delete_snapshot(region: Region, snap: JSON) -> None:
    if snap["status"] not in ("available", "error"):
        raise fault(400, "Invalid snapshot: Volume Snapshot status must be available or error "
                    "and must not be part of a group.")
    del region.snapshots[snap["id"]]


# --------------------------------------------------------------------------- backups


def settle_backup(backup: JSON) -> JSON:
    if backup["status"] == "creating" and now() >= backup["_ready_at"]:
        reason = backup.pop("_fail_reason", "")
        backup.update({"status": "error" if reason else "available",
                       "fail_reason": reason or None, "updated_at": iso(now(), micro=True),
                       "object_count": 0 if reason else backup["size"]})
    return backup


def get_backup(region: Region, backup_id: str) -> JSON:
    backup = region.backups.get(backup_id)
    if backup is None:
        raise fault(404, f"Backup {backup_id} could not be found.")
    return settle_backup(backup)


def create_backup(store: Store, region: Region, spec: JSON) -> JSON:
    volume = get(region, str(spec.get("volume_id")))
    if volume["status"] not in ("available", "in-use"):
        raise fault(400, "Invalid volume: Volume to be backed up must be available or in-use, "
                    f"but the current status is \"{volume['status']}\".")
    if volume["status"] == "in-use" and not flag(spec.get("force", False)):
        raise fault(400, "Invalid volume: Backing up an in-use volume must use the force flag.")
    metadata = _metadata_of(spec, "Backup")
    limit = store.knobs.quota["backups"]
    if len(region.backups) + 1 > limit:
        raise fault(413, f"BackupLimitExceeded: Maximum number of backups allowed ({limit}) "
                    "exceeded", retryAfter="0")
    ts = iso(now(), micro=True)
    ready = now() + store.knobs.snapshot_seconds
    backup = {
        "id": new_id(),
        "name": spec.get("name"),
        "description": spec.get("description"),
        "volume_id": volume["id"],
        "snapshot_id": None,
        "size": volume["size"],
        "status": "creating",
        "fail_reason": None,
        "availability_zone": volume["availability_zone"],
        "container": spec.get("container") or "volumebackups",
        "object_count": 0,
        "is_incremental": False,
        "has_dependent_backups": False,
        "metadata": metadata,
        "created_at": ts,
        "updated_at": ts,
        "data_timestamp": ts,
        "_ready_at": ready,
        "_fail_reason": store.knobs.backup_fail_reason,
    }
    region.backups[backup["id"]] = backup
    volume.update({"_previous_status": volume["status"], "status": "backing-up",
                   "_backed_up_at": ready})
    return backup


def delete_backup(region: Region, backup: JSON) -> None:
    if backup["status"] not in ("available", "error"):
        raise fault(400, "Invalid backup: Backup status must be available or error")
    del region.backups[backup["id"]]
