"""Glance v2: a fixed set of public images, the same ids in every region.

``GET /v2/images`` (``limit``/``marker``, ``name``/``status``/``visibility``
filters, a ``next`` path when a page is full, newest first) and
``GET /v2/images/{id}``.  Errors are plain text, as Glance's are.
"""

from __future__ import annotations

from .core import JSON, ApiError, Call, Reply, Router, dispatch, paginate

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


@router.route("GET", "/v2/images")
def _list(call: Call) -> Reply:
    images = sorted(IMAGES.values(), key=lambda i: i["created_at"], reverse=True)
    for key in ("name", "status", "visibility", "os_distro"):
        wanted = call.arg(key)
        if wanted is not None:
            images = [i for i in images if i.get(key) == wanted]
    page, next_qs = paginate(call, images, bad, max_limit=25 if call.arg("limit") is None else 1000)
    body: JSON = {"images": page, "first": "/v2/images", "schema": "/v2/schemas/images"}
    if next_qs:
        body["next"] = f"/v2/images?{next_qs}"
    return Reply(200, body)


@router.route("GET", "/v2/images/{image_id}")
def _show(call: Call) -> Reply:
    image = IMAGES.get(call.params["image_id"])
    if image is None:
        raise not_found(f"No image found with ID {call.params['image_id']}")
    return Reply(200, image)
