"""Cinder v3 (base microversion 3.0): volumes, volume types, snapshots and backups.

A new volume is ``creating`` for ``volume_seconds`` then ``available``; Nova's
``os-volume_attachments`` makes it ``in-use`` (see :func:`attach`).  Deleting an
attached or still-creating volume is a 400 ``badRequest``; ``os-extend`` grows
an ``available`` volume.  Lists newest first with ``limit``/``marker`` and a
``volumes_links`` next link when a page is full.

Snapshots (``/snapshots``) and backups (``/backups``) are ``creating`` for
``snapshot_seconds``, then ``available``.  As in Cinder, a snapshot lives on its
volume: a volume with snapshots cannot be deleted ("Volume still has 1 dependent
snapshots") unless ``?cascade=true``, which deletes them with it; snapshots count
against the ``gigabytes`` quota.  A backup does not depend on its volume, which is
``backing-up`` while the backup is made; the knob ``backup_fail_reason`` makes
new backups end in ``error`` with that ``fail_reason``.  An attached volume needs
``force`` for either.  Microversions (``OpenStack-API-Version: volume 3.x``) are
accepted up to 3.43, which is the one that changes anything here: backup metadata.
"""

from __future__ import annotations

from typing import Any

from .core import (
    JSON,
    ApiError,
    Call,
    Reply,
    Router,
    dispatch,
    fault,
    iso,
    new_id,
    now,
    page_reply,
    paginate,
)
from .identity import PROJECT_ID, USER_ID
from .state import Region

router = Router()
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


MAX_MICROVERSION = (3, 43)


def handle(call: Call) -> Reply:
    if not call.path.startswith(f"/{PROJECT_ID}/") and call.path != f"/{PROJECT_ID}":
        raise fault(404, "The resource could not be found.")
    call.path = call.path[len(PROJECT_ID) + 1 :]
    version = microversion(call)
    reply = dispatch(router, call, fault(404, "The resource could not be found."), fault_400)
    if version != (3, 0):
        reply.headers.setdefault("OpenStack-API-Version", f"volume {version[0]}.{version[1]}")
        reply.headers.setdefault("Vary", "OpenStack-API-Version")
    return reply


def microversion(call: Call) -> tuple[int, int]:
    """The ``OpenStack-API-Version: volume 3.x`` asked for (3.0 without one); 406 above
    what the emulator offers, as Cinder answers."""
    raw = call.headers.get("openstack-api-version", "")
    service, _, value = raw.strip().partition(" ")
    if service.lower() != "volume" or not value:
        return (3, 0)
    if value.strip() == "latest":
        return MAX_MICROVERSION
    major, _, minor = value.strip().partition(".")
    try:
        version = (int(major), int(minor))
    except ValueError:
        raise fault(400, f"Invalid API version request string {value.strip()}.") from None
    if version < (3, 0) or version > MAX_MICROVERSION:
        raise fault(406, f"Version {version[0]}.{version[1]} is not supported by the API. "
                    f"Minimum is 3.0 and maximum is {MAX_MICROVERSION[0]}.{MAX_MICROVERSION[1]}.")
    return version


def fault_400(message: str) -> ApiError:
    return fault(400, message)


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


def _view(call: Call, volume: JSON) -> JSON:
    settle(volume)
    body = {k: v for k, v in volume.items() if not k.startswith("_")}
    body["links"] = [
        {"rel": "self", "href": f"{call.root}/volumes/{volume['id']}"},
        {"rel": "bookmark", "href": f"{call.root}/volumes/{volume['id']}".replace("/v3/", "/")},
    ]
    return body


def _region(call: Call) -> Region:
    region: Region = call.store.regions[call.region]
    return region


def _listing(call: Call, detail: bool) -> Reply:
    volumes = [settle(v) for v in reversed(_region(call).volumes.values())]
    for key in ("name", "status"):
        wanted = call.arg(key)
        if wanted is not None:
            volumes = [v for v in volumes if v[key] == wanted]
    page, next_qs = paginate(call, volumes, fault_400)
    views = [_view(call, v) for v in page]
    if not detail:
        views = [{k: v[k] for k in ("id", "name", "links")} for v in views]
    return page_reply(call, "volumes", views, "volumes/detail" if detail else "volumes",
                      next_qs)


@router.route("GET", "/volumes")
def _list(call: Call) -> Reply:
    return _listing(call, detail=False)


@router.route("GET", "/volumes/detail")
def _detail(call: Call) -> Reply:
    return _listing(call, detail=True)


@router.route("POST", "/volumes")
def _create(call: Call) -> Reply:
    region = _region(call)
    spec = call.json("volume")
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
    limit = call.store.knobs.quota["volumes"]
    if len(region.volumes) + 1 > limit:
        raise fault(
            413,
            f"VolumeLimitExceeded: Maximum number of volumes allowed ({limit}) "
            "exceeded for quota 'volumes'.",
            retryAfter="0",
        )
    _check_gigabytes(call, region, size)
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
        "_ready_at": now() + call.store.knobs.volume_seconds,
    }
    region.volumes[volume["id"]] = volume
    return Reply(202, {"volume": _view(call, volume)})


def _check_gigabytes(call: Call, region: Region, size: int) -> None:
    used = sum(v["size"] for v in region.volumes.values()) + sum(
        s["size"] for s in region.snapshots.values())
    limit = call.store.knobs.quota["gigabytes"]
    if used + size > limit:
        raise fault(
            413,
            "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed "
            f"gigabytes quota. Requested {size}G, quota is {limit}G and {used}G has been consumed.",
            retryAfter="0",
        )


@router.route("GET", "/volumes/{volume_id}")
def _show(call: Call) -> Reply:
    return Reply(200, {"volume": _view(call, get(_region(call), call.params["volume_id"]))})


@router.route("PUT", "/volumes/{volume_id}")
def _update(call: Call) -> Reply:
    volume = get(_region(call), call.params["volume_id"])
    spec = call.json("volume")
    for key in ("name", "description", "metadata"):
        if key in spec:
            volume[key] = spec[key]
    volume["updated_at"] = iso(now(), micro=True)
    return Reply(200, {"volume": _view(call, volume)})


@router.route("DELETE", "/volumes/{volume_id}")
def _delete(call: Call) -> Reply:
    region = _region(call)
    volume = get(region, call.params["volume_id"])
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
    cascade = (call.arg("cascade") or "").lower() in ("true", "1", "yes")
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
    return Reply(202)


@router.route("POST", "/volumes/{volume_id}/action")
def _action(call: Call) -> Reply:
    region = _region(call)
    volume = get(region, call.params["volume_id"])
    body = call.body if isinstance(call.body, dict) else {}
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
    _check_gigabytes(call, region, new_size - volume["size"])
    volume.update({"size": new_size, "updated_at": iso(now(), micro=True)})
    return Reply(202)


@router.route("GET", "/volumes/{volume_id}/metadata")
def _metadata(call: Call) -> Reply:
    return Reply(200, {"metadata": get(_region(call), call.params["volume_id"])["metadata"]})


@router.route("POST", "/volumes/{volume_id}/metadata")
def _merge_metadata(call: Call) -> Reply:
    volume = get(_region(call), call.params["volume_id"])
    volume["metadata"].update({str(k): str(v) for k, v in call.json("metadata").items()})
    return Reply(200, {"metadata": volume["metadata"]})


@router.route("PUT", "/volumes/{volume_id}/metadata")
def _replace_metadata(call: Call) -> Reply:
    volume = get(_region(call), call.params["volume_id"])
    volume["metadata"] = {str(k): str(v) for k, v in call.json("metadata").items()}
    return Reply(200, {"metadata": volume["metadata"]})


@router.route("GET", "/types")
def _types(call: Call) -> Reply:
    return Reply(200, {"volume_types": list(TYPES.values())})


# ------------------------------------------------------------------------- snapshots


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes", "y", "on")


def settle_snapshot(snap: JSON) -> JSON:
    if snap["status"] == "creating" and now() >= snap["_ready_at"]:
        snap.update({"status": "available", "os-extended-snapshot-attributes:progress": "100%"})
    return snap


def _get_snapshot(region: Region, snapshot_id: str) -> JSON:
    snap = region.snapshots.get(snapshot_id)
    if snap is None:
        raise fault(404, f"Snapshot {snapshot_id} could not be found.")
    return settle_snapshot(snap)


def _snapshot_view(snap: JSON, detail: bool = True) -> JSON:
    body = {k: v for k, v in settle_snapshot(snap).items() if not k.startswith("_")}
    if not detail:
        body = {k: v for k, v in body.items() if not k.startswith("os-extended-")}
    return body


def _metadata_of(spec: JSON, what: str) -> dict[str, str]:
    metadata = spec.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise fault(400, f"Invalid input for field/attribute metadata. Value: {metadata!r}. "
                    f"{what} metadata must be a dict")
    return {str(k): str(v) for k, v in metadata.items()}


def _filtered(call: Call, items: list[JSON], keys: tuple[str, ...]) -> list[JSON]:
    for key in keys:
        wanted = call.arg(key)
        if wanted is not None:
            items = [i for i in items if i.get(key) == wanted]
    return items


def _snapshot_listing(call: Call, detail: bool) -> Reply:
    snaps = [settle_snapshot(s) for s in reversed(_region(call).snapshots.values())]
    snaps = _filtered(call, snaps, ("name", "status", "volume_id"))
    page, next_qs = paginate(call, snaps, fault_400)
    return page_reply(call, "snapshots", [_snapshot_view(s, detail) for s in page],
                      "snapshots/detail" if detail else "snapshots", next_qs)


@router.route("GET", "/snapshots")
def _snapshots(call: Call) -> Reply:
    return _snapshot_listing(call, detail=False)


@router.route("GET", "/snapshots/detail")
def _snapshots_detail(call: Call) -> Reply:
    return _snapshot_listing(call, detail=True)


@router.route("POST", "/snapshots")
def _create_snapshot(call: Call) -> Reply:
    region = _region(call)
    spec = call.json("snapshot")
    volume = get(region, str(spec.get("volume_id")))
    force = _flag(spec.get("force", False))
    if not force and volume["status"] != "available":
        raise fault(400, f"Invalid volume: Volume {volume['id']} status must be available, "
                    f"but current status is: {volume['status']}.")
    if volume["status"] not in ("available", "in-use"):
        raise fault(400, f"Invalid volume: Volume {volume['id']} status must be available or "
                    f"in-use, but current status is: {volume['status']}.")
    metadata = _metadata_of(spec, "Snapshot")
    limit = call.store.knobs.quota["snapshots"]
    if len(region.snapshots) + 1 > limit:
        raise fault(413, f"SnapshotLimitExceeded: Maximum number of snapshots allowed ({limit}) "
                    "exceeded for quota 'snapshots'.", retryAfter="0")
    _check_gigabytes(call, region, volume["size"])
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
        "_ready_at": now() + call.store.knobs.snapshot_seconds,
    }
    region.snapshots[snap["id"]] = snap
    return Reply(202, {"snapshot": _snapshot_view(snap)})


@router.route("GET", "/snapshots/{snapshot_id}")
def _show_snapshot(call: Call) -> Reply:
    snap = _get_snapshot(_region(call), call.params["snapshot_id"])
    return Reply(200, {"snapshot": _snapshot_view(snap)})


@router.route("DELETE", "/snapshots/{snapshot_id}")
def _delete_snapshot(call: Call) -> Reply:
    region = _region(call)
    snap = _get_snapshot(region, call.params["snapshot_id"])
    if snap["status"] not in ("available", "error"):
        raise fault(400, "Invalid snapshot: Volume Snapshot status must be available or error "
                    "and must not be part of a group.")
    del region.snapshots[snap["id"]]
    return Reply(202)


# ------------------------------------------------------------------------- backups


def settle_backup(backup: JSON) -> JSON:
    if backup["status"] == "creating" and now() >= backup["_ready_at"]:
        reason = backup.pop("_fail_reason", "")
        backup.update({"status": "error" if reason else "available",
                       "fail_reason": reason or None, "updated_at": iso(now(), micro=True),
                       "object_count": 0 if reason else backup["size"]})
    return backup


def _get_backup(region: Region, backup_id: str) -> JSON:
    backup = region.backups.get(backup_id)
    if backup is None:
        raise fault(404, f"Backup {backup_id} could not be found.")
    return settle_backup(backup)


def _backup_view(call: Call, backup: JSON, version: tuple[int, int], detail: bool = True
                 ) -> JSON:
    body = {k: v for k, v in settle_backup(backup).items() if not k.startswith("_")}
    if version < (3, 43):
        body.pop("metadata", None)
    body["links"] = [
        {"rel": "self", "href": f"{call.root}/backups/{backup['id']}"},
        {"rel": "bookmark", "href": f"{call.root}/backups/{backup['id']}".replace("/v3/", "/")},
    ]
    if not detail:
        body = {k: body[k] for k in ("id", "name", "links")}
    return body


def _backup_listing(call: Call, detail: bool) -> Reply:
    version = microversion(call)
    backups = [settle_backup(b) for b in reversed(_region(call).backups.values())]
    backups = _filtered(call, backups, ("name", "status", "volume_id"))
    page, next_qs = paginate(call, backups, fault_400)
    return page_reply(call, "backups", [_backup_view(call, b, version, detail) for b in page],
                      "backups/detail" if detail else "backups", next_qs)


@router.route("GET", "/backups")
def _backups(call: Call) -> Reply:
    return _backup_listing(call, detail=False)


@router.route("GET", "/backups/detail")
def _backups_detail(call: Call) -> Reply:
    return _backup_listing(call, detail=True)


@router.route("POST", "/backups")
def _create_backup(call: Call) -> Reply:
    region = _region(call)
    version = microversion(call)
    spec = call.json("backup")
    if "metadata" in spec and version < (3, 43):
        raise fault(400, "Invalid input for field/attribute backup. Additional properties are "
                    "not allowed ('metadata' was unexpected)")
    volume = get(region, str(spec.get("volume_id")))
    if volume["status"] not in ("available", "in-use"):
        raise fault(400, "Invalid volume: Volume to be backed up must be available or in-use, "
                    f"but the current status is \"{volume['status']}\".")
    if volume["status"] == "in-use" and not _flag(spec.get("force", False)):
        raise fault(400, "Invalid volume: Backing up an in-use volume must use the force flag.")
    metadata = _metadata_of(spec, "Backup")
    limit = call.store.knobs.quota["backups"]
    if len(region.backups) + 1 > limit:
        raise fault(413, f"BackupLimitExceeded: Maximum number of backups allowed ({limit}) "
                    "exceeded", retryAfter="0")
    ts = iso(now(), micro=True)
    ready = now() + call.store.knobs.snapshot_seconds
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
        "_fail_reason": call.store.knobs.backup_fail_reason,
    }
    region.backups[backup["id"]] = backup
    volume.update({"_previous_status": volume["status"], "status": "backing-up",
                   "_backed_up_at": ready})
    view = _backup_view(call, backup, version)
    return Reply(202, {"backup": {k: view[k] for k in ("id", "name", "links", "metadata")
                                  if k in view}})


@router.route("GET", "/backups/{backup_id}")
def _show_backup(call: Call) -> Reply:
    backup = _get_backup(_region(call), call.params["backup_id"])
    return Reply(200, {"backup": _backup_view(call, backup, microversion(call))})


@router.route("DELETE", "/backups/{backup_id}")
def _delete_backup(call: Call) -> Reply:
    region = _region(call)
    backup = _get_backup(region, call.params["backup_id"])
    if backup["status"] not in ("available", "error"):
        raise fault(400, "Invalid backup: Backup status must be available or error")
    del region.backups[backup["id"]]
    return Reply(202)
