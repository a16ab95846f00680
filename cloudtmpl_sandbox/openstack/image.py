"""Glance v2: a fixed set of public images (the same ids in every region) and the
project's own snapshots, per region.

``GET /v2/images`` (``limit``/``marker``, ``name``/``status``/``visibility``/
``os_distro`` and ``id=in:a,b`` filters, a ``next`` path when a page is full, newest
first), ``GET /v2/images/{id}`` and ``DELETE /v2/images/{id}`` (204; a public image
the project does not own: 403, as Glance refuses it).  Errors are plain text, as
Glance's are.

Snapshots are made by Nova's ``createImage`` (:func:`snapshot`, called from
:mod:`.server_images`): private, owned by the project, ``queued`` then ``saving`` then
``active`` over the ``snapshot_seconds`` knob, with Nova's properties (the base image's
inheritable ones, ``image_type: snapshot``, ``instance_uuid``, ``base_image_ref``,
``user_id``, then the request's metadata) as top-level keys, as Glance v2 shows
properties.
"""

from __future__ import annotations

from typing import Any

from .core import JSON, ApiError, Call, Reply, Router, dispatch, iso, new_id, now, paginate
from .identity import PROJECT_ID
from .state import Region

router = Router()

# name → (id, os_distro, os_version, min_disk GB, size bytes); ids are in the catalog.
_SHIPPED = {
    "ubuntu-22.04": ("5f3c9a52-3d1e-4c36-9c52-2a6f0f2b2204", "ubuntu", "22.04", 3, 682_000_000),
    "ubuntu-20.04": ("0c8d7e2a-7b34-4f0e-8a7d-5e1c0f2b2004", "ubuntu", "20.04", 3, 612_000_000),
    "debian-12": ("b6a0d9e4-1f2c-4a8b-9e3d-7c5f1a2b0012", "debian", "12", 2, 412_000_000),
    "cirros-0.6": ("a1c2e3f4-0b6d-4e8f-9a0b-c1d2e3f40006", "cirros", "0.6.2", 1, 21_000_000),
}
_CREATED = "2024-01-15T10:00:00Z"


def _image(name: str, spec: tuple[str, str, str, int, int], index: int) -> JSON:
    image_id, distro, version, min_disk, size = spec
    return {
        "id": image_id,
        "name": name,
        "status": "active",
        "visibility": "public",
        "protected": False,
        "os_hidden": False,
        "owner": "sandbox-admin",
        "container_format": "bare",
        "disk_format": "qcow2",
        "min_disk": min_disk,
        "min_ram": 0,
        "size": size,
        "virtual_size": min_disk * 1024**3,
        "checksum": None,
        "os_hash_algo": None,
        "os_hash_value": None,
        "os_distro": distro,
        "os_version": version,
        "tags": [],
        "created_at": _CREATED.replace("10:00", f"10:{index:02d}"),
        "updated_at": _CREATED.replace("10:00", f"10:{index:02d}"),
        "self": f"/v2/images/{image_id}",
        "file": f"/v2/images/{image_id}/file",
        "schema": "/v2/schemas/image",
    }


IMAGES: dict[str, JSON] = {
    spec[0]: _image(name, spec, i) for i, (name, spec) in enumerate(_SHIPPED.items())
}
IMAGE_IDS = {name: spec[0] for name, spec in _SHIPPED.items()}


def not_found(message: str) -> ApiError:
    return ApiError(404, f"404 Not Found\n\n{message}\n\n")


def bad(message: str) -> ApiError:
    return ApiError(400, f"400 Bad Request\n\n{message}\n\n")


def handle(call: Call) -> Reply:
    return dispatch(router, call, not_found("The resource could not be found."), bad)


# the base image's properties Nova does not copy to a snapshot (non_inheritable_image_properties)
_NOT_INHERITED = {"cache_in_nova", "bittorrent", "img_signature_hash_method", "img_signature",
                  "img_signature_key_type", "img_signature_certificate_uuid"}
_CORE = {"id", "name", "status", "visibility", "protected", "os_hidden", "owner",
         "container_format", "disk_format", "min_disk", "min_ram", "size", "virtual_size",
         "checksum", "os_hash_algo", "os_hash_value", "tags", "created_at", "updated_at",
         "self", "file", "schema"}


def settle(image: JSON) -> JSON:
    """A snapshot's pending status, once its time has come (queued → saving → active)."""
    steps = image.get("_steps") or []
    while steps and now() >= steps[0][1]:
        status, at = steps.pop(0)
        image.update(status=status, updated_at=iso(at))
        if status == "active":
            image.update(size=image["_size"], checksum=image["_checksum"],
                         os_hash_algo="sha512", os_hash_value=image["_hash"])
    return image


def find(region: Region, image_id: str) -> JSON | None:
    """A public image or one of the region's own, settled; None if neither."""
    if image_id in IMAGES:
        return IMAGES[image_id]
    own = region.images.get(image_id)
    return settle(own) if own is not None else None


def snapshot(region: Region, base_id: str, name: str, extra: dict[str, str], server_id: str,
             user_id: str, min_disk: int, seconds: float) -> JSON:
    """Glance's side of Nova's ``createImage``: a queued private image of a server."""
    base = find(region, base_id) or {}
    inherited = {k: v for k, v in base.items()
                 if k not in _CORE and not k.startswith("_") and k not in _NOT_INHERITED}
    image_id, created = new_id(), now()
    digest = new_id().replace("-", "")
    image: JSON = {
        **inherited,
        "id": image_id, "name": name, "status": "queued", "visibility": "private",
        "protected": False, "os_hidden": False, "owner": PROJECT_ID,
        "container_format": "bare", "disk_format": "qcow2",
        "min_disk": max(int(base.get("min_disk") or 0), min_disk),
        "min_ram": int(base.get("min_ram") or 0), "size": None, "virtual_size": None,
        "checksum": None, "os_hash_algo": None, "os_hash_value": None, "tags": [],
        "created_at": iso(created), "updated_at": iso(created),
        "self": f"/v2/images/{image_id}", "file": f"/v2/images/{image_id}/file",
        "schema": "/v2/schemas/image",
        "image_type": "snapshot", "instance_uuid": server_id, "base_image_ref": base_id,
        "user_id": user_id, "image_location": "snapshot", "owner_project_name": "sandbox",
        **extra,
        "_steps": [("saving", created + seconds / 2), ("active", created + seconds)],
        "_size": int(base.get("size") or 0), "_checksum": digest,
        "_hash": (digest * 4)[:128],
    }
    region.images[image_id] = image
    return image


def view(image: JSON) -> JSON:
    return {k: v for k, v in settle(image).items() if not k.startswith("_")}


def _region(call: Call) -> Region:
    region: Region = call.store.regions[call.region]
    return region


def _matches(image: JSON, call: Call) -> bool:
    for key in ("name", "status", "visibility", "os_distro"):
        wanted = call.arg(key)
        if wanted is not None and image.get(key) != wanted:
            return False
    ids: Any = call.arg("id")
    if ids is not None:
        wanted_ids = ids[3:].split(",") if ids.startswith("in:") else [ids]
        return bool(image["id"] in wanted_ids)
    return True


@router.route("GET", "/v2/images")
def _list(call: Call) -> Reply:
    own = [view(i) for i in _region(call).images.values()]
    images = sorted([*IMAGES.values(), *own], key=lambda i: i["created_at"], reverse=True)
    images = [i for i in images if _matches(i, call)]
    page, next_qs = paginate(call, images, bad, max_limit=25 if call.arg("limit") is None else 1000)
    body: JSON = {"images": page, "first": "/v2/images", "schema": "/v2/schemas/images"}
    if next_qs:
        body["next"] = f"/v2/images?{next_qs}"
    return Reply(200, body)


@router.route("GET", "/v2/images/{image_id}")
def _show(call: Call) -> Reply:
    image = find(_region(call), call.params["image_id"])
    if image is None:
        raise not_found(f"No image found with ID {call.params['image_id']}")
    return Reply(200, view(image))


@router.route("DELETE", "/v2/images/{image_id}")
def _delete(call: Call) -> Reply:
    image_id = call.params["image_id"]
    region = _region(call)
    if image_id in IMAGES:
        raise ApiError(403, "403 Forbidden\n\nYou are not permitted to delete this image.\n\n")
    if image_id not in region.images:
        raise not_found(f"Failed to find image {image_id} to delete")
    del region.images[image_id]
    return Reply(204)
