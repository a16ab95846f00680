"""Cinder v3 (base microversion 3.0): volumes and volume types.

A new volume is ``creating`` for ``volume_seconds`` then ``available``; Nova's
``os-volume_attachments`` makes it ``in-use`` (see :func:`attach`).  Deleting an
attached or still-creating volume is a 400 ``badRequest``; ``os-extend`` grows
an ``available`` volume.  Lists newest first with ``limit``/``marker`` and a
``volumes_links`` next link when a page is full.
"""

from __future__ import annotations

from .core import JSON, ApiError, Call, Reply, Router, dispatch, fault, iso, new_id, now, paginate
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


def handle(call: Call) -> Reply:
    if not call.path.startswith(f"/{PROJECT_ID}/") and call.path != f"/{PROJECT_ID}":
        raise fault(404, "The resource could not be found.")
    call.path = call.path[len(PROJECT_ID) + 1 :]
    return dispatch(router, call, fault(404, "The resource could not be found."), fault_400)


def fault_400(message: str) -> ApiError:
    return fault(400, message)


def settle(volume: JSON) -> JSON:
    """Move a volume on once its creation time has passed."""
    if volume["status"] == "creating" and now() >= volume["_ready_at"]:
        volume["status"] = "available"
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
    body: JSON = {"volumes": views}
    if next_qs:
        suffix = "/detail" if detail else ""
        body["volumes_links"] = [{"rel": "next", "href": f"{call.root}/volumes{suffix}?{next_qs}"}]
    return Reply(200, body)


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
    used = sum(v["size"] for v in region.volumes.values())
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
