"""Cinder v3 (base microversion 3.0) on the wire: routes, views, microversions.

Lists are newest first with ``limit``/``marker`` and a ``volumes_links`` next link
when a page is full; ``os-extend`` is the one volume action; ``DELETE`` takes
``?cascade=true``.  Microversions (``OpenStack-API-Version: volume 3.x``) are
accepted up to 3.43, which is the one that changes anything here: backup metadata.
The state changes and refusals are :mod:`.volume_models`'s.
"""

from __future__ import annotations

from . import quotas, versions
from . import volume_models as models
from .core import JSON, ApiError, Call, Reply, Router, dispatch, fault, page_reply, paginate
from .identity import PROJECT_ID
from .state import Region

router = Router()
MAX_MICROVERSION = versions.VOLUME[1]  # what the version document claims


def handle(call: Call) -> Reply:
    if not call.path.startswith(f"/{PROJECT_ID}/") and call.path != f"/{PROJECT_ID}":
        raise fault(404, "The resource could not be found.")
    call.path = call.path[len(PROJECT_ID) + 1 :]
    version = microversion(call)
    table = quotas.volume_router if quotas.volume_router.match(call.method, call.path)[2] \
        else router
    reply = dispatch(table, call, fault(404, "The resource could not be found."), fault_400)
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


def _region(call: Call) -> Region:
    region: Region = call.store.regions[call.region]
    return region


def _volume(call: Call) -> JSON:
    return models.get(_region(call), call.params["volume_id"])


def _view(call: Call, volume: JSON) -> JSON:
    models.settle(volume)
    body = {k: v for k, v in volume.items() if not k.startswith("_")}
    body["links"] = [
        {"rel": "self", "href": f"{call.root}/volumes/{volume['id']}"},
        {"rel": "bookmark", "href": f"{call.root}/volumes/{volume['id']}".replace("/v3/", "/")},
    ]
    return body


def _filtered(call: Call, items: list[JSON], keys: tuple[str, ...]) -> list[JSON]:
    for key in keys:
        wanted = call.arg(key)
        if wanted is not None:
            items = [i for i in items if i.get(key) == wanted]
    return items


# --------------------------------------------------------------------------- volumes


def _listing(call: Call, detail: bool) -> Reply:
    volumes = [models.settle(v) for v in reversed(_region(call).volumes.values())]
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
    volume = models.create_volume(call.store, region, call.json("volume"))
    return Reply(202, {"volume": _view(call, volume)})


@router.route("GET", "/volumes/{volume_id}")
def _show(call: Call) -> Reply:
    return Reply(200, {"volume": _view(call, _volume(call))})


@router.route("PUT", "/volumes/{volume_id}")
def _update(call: Call) -> Reply:
    volume = _volume(call)
    models.update_volume(volume, call.json("volume"))
    return Reply(200, {"volume": _view(call, volume)})


@router.route("DELETE", "/volumes/{volume_id}")
def _delete(call: Call) -> Reply:
    cascade = (call.arg("cascade") or "").lower() in ("true", "1", "yes")
    models.delete_volume(_region(call), _volume(call), cascade)
    return Reply(202)


@router.route("POST", "/volumes/{volume_id}/action")
def _action(call: Call) -> Reply:
    volume = _volume(call)
    body = call.body if isinstance(call.body, dict) else {}
    models.act(call.store, _region(call), volume, body)
    return Reply(202)


@router.route("GET", "/volumes/{volume_id}/metadata")
def _metadata(call: Call) -> Reply:
    return Reply(200, {"metadata": _volume(call)["metadata"]})


@router.route("POST", "/volumes/{volume_id}/metadata")
def _merge_metadata(call: Call) -> Reply:
    volume = _volume(call)
    volume["metadata"].update({str(k): str(v) for k, v in call.json("metadata").items()})
    return Reply(200, {"metadata": volume["metadata"]})


@router.route("PUT", "/volumes/{volume_id}/metadata")
def _replace_metadata(call: Call) -> Reply:
    volume = _volume(call)
    volume["metadata"] = {str(k): str(v) for k, v in call.json("metadata").items()}
    return Reply(200, {"metadata": volume["metadata"]})


@router.route("GET", "/types")
def _types(call: Call) -> Reply:
    return Reply(200, {"volume_types": list(models.TYPES.values())})


# ------------------------------------------------------------------------- snapshots


def _snapshot_view(snap: JSON, detail: bool = True) -> JSON:
    body = {k: v for k, v in models.settle_snapshot(snap).items() if not k.startswith("_")}
    if not detail:
        body = {k: v for k, v in body.items() if not k.startswith("os-extended-")}
    return body


def _snapshot_listing(call: Call, detail: bool) -> Reply:
    snaps = [models.settle_snapshot(s) for s in reversed(_region(call).snapshots.values())]
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
    snap = models.create_snapshot(call.store, region, call.json("snapshot"))
    return Reply(202, {"snapshot": _snapshot_view(snap)})


@router.route("GET", "/snapshots/{snapshot_id}")
def _show_snapshot(call: Call) -> Reply:
    snap = models.get_snapshot(_region(call), call.params["snapshot_id"])
    return Reply(200, {"snapshot": _snapshot_view(snap)})


@router.route("DELETE", "/snapshots/{snapshot_id}")
def _delete_snapshot(call: Call) -> Reply:
    region = _region(call)
    models.delete_snapshot(region, models.get_snapshot(region, call.params["snapshot_id"]))
    return Reply(202)


# --------------------------------------------------------------------------- backups


def _backup_view(call: Call, backup: JSON, version: tuple[int, int], detail: bool = True
                 ) -> JSON:
    body = {k: v for k, v in models.settle_backup(backup).items() if not k.startswith("_")}
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
    backups = [models.settle_backup(b) for b in reversed(_region(call).backups.values())]
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
    backup = models.create_backup(call.store, region, spec)
    view = _backup_view(call, backup, version)
    return Reply(202, {"backup": {k: view[k] for k in ("id", "name", "links", "metadata")
                                  if k in view}})


@router.route("GET", "/backups/{backup_id}")
def _show_backup(call: Call) -> Reply:
    backup = models.get_backup(_region(call), call.params["backup_id"])
    return Reply(200, {"backup": _backup_view(call, backup, microversion(call))})


@router.route("DELETE", "/backups/{backup_id}")
def _delete_backup(call: Call) -> Reply:
    region = _region(call)
    models.delete_backup(region, models.get_backup(region, call.params["backup_id"]))
    return Reply(202)
