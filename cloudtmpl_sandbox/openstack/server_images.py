"""Nova's server actions that involve Glance images: ``createImage`` and ``rebuild``.

``createImage`` (``{"createImage": {"name", "metadata"}}``) is allowed while the
server is ``ACTIVE`` or ``SHUTOFF`` with no task running (else 409, as Nova's
``check_instance_state``); it makes a private Glance snapshot (:func:`.image.snapshot`:
queued → saving → active) and the server's task state is ``image_snapshot`` until the
image is active.  The properties are Nova's: the base image's inheritable ones, then
``image_type: snapshot``, ``instance_uuid``, ``base_image_ref``, ``user_id``, then the
request's ``metadata`` (the server's own metadata is not copied, as in Nova).  The
image's ``min_disk`` is the flavor's disk when larger than the base image's.

``rebuild`` (``{"rebuild": {"imageRef", "name", "metadata", "adminPass",
"description"}}``) is allowed in ``ACTIVE``, ``SHUTOFF`` and ``ERROR`` with no task
running (else 409); the image must exist and be active (400).  The server goes
``REBUILD`` for ``build_seconds``, then back to ``ACTIVE`` (``SHUTOFF`` if it was
stopped); ``metadata``, when given, replaces the server's.
"""

from __future__ import annotations

from typing import Any

from . import image as glance
from .compute_models import FLAVORS, conflict, meta_values
from .core import JSON, fault, now
from .identity import USER_ID
from .state import Region, Store

SNAPSHOT_ALLOWED = ("ACTIVE", "SHUTOFF")
REBUILD_ALLOWED = ("ACTIVE", "SHUTOFF", "ERROR")


def task_state(region: Region, server: JSON) -> str | None:
    """``image_snapshot``/``image_uploading`` while its snapshot is queued/saving."""
    image_id = server.get("_snapshot")
    image = region.images.get(image_id) if image_id else None
    if image is None or glance.settle(image)["status"] == "active":
        server["_snapshot"] = None
        return None
    return "image_snapshot" if image["status"] == "queued" else "image_uploading"


def _busy(region: Region, server: JSON, action: str) -> None:
    state = task_state(region, server)
    if state is not None:
        raise fault(409, f"Cannot '{action}' instance {server['id']} while it is in "
                         f"task_state {state}")


def create_image(store: Store, region: Region, server: JSON, args: Any) -> JSON:
    """Start a snapshot of ``server``; the new (queued) Glance image."""
    spec = args if isinstance(args, dict) else {}
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise fault(400, "Invalid input for field/attribute name.")
    extra = set(spec) - {"name", "metadata"}
    if extra:
        raise fault(400, "Invalid input for field/attribute createImage. Additional "
                         f"properties are not allowed ({', '.join(sorted(extra))!r} were "
                         "unexpected)")
    metadata = meta_values(spec.get("metadata") or {})
    if server["status"] not in SNAPSHOT_ALLOWED:
        raise conflict(server, "createImage")
    _busy(region, server, "createImage")
    flavor = FLAVORS[server["flavor_id"]]
    made = glance.snapshot(region, server["image_id"], name, metadata, server["id"], USER_ID,
                           int(flavor["disk"]), store.knobs.snapshot_seconds)
    server["_snapshot"] = made["id"]
    return made


def rebuild(store: Store, region: Region, server: JSON, args: Any,
            description_allowed: bool) -> str | None:
    """Rebuild ``server`` from ``imageRef``; the ``adminPass`` asked for, if any."""
    spec = args if isinstance(args, dict) else {}
    allowed = {"imageRef", "name", "metadata", "adminPass", "OS-DCF:diskConfig",
               "accessIPv4", "accessIPv6", "personality", "preserve_ephemeral"}
    if description_allowed:
        allowed.add("description")
    extra = set(spec) - allowed
    if extra:
        raise fault(400, "Invalid input for field/attribute rebuild. Additional properties "
                         f"are not allowed ({', '.join(sorted(extra))!r} were unexpected)")
    ref = str(spec.get("imageRef") or "").rstrip("/").rsplit("/", 1)[-1]
    if not ref:
        raise fault(400, "Invalid input for field/attribute rebuild. Value: "
                         f"{spec!r}. 'imageRef' is a required property")
    name = spec.get("name", server["name"])
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise fault(400, "Invalid input for field/attribute name.")
    metadata = meta_values(spec["metadata"]) if "metadata" in spec else None
    if server["status"] not in REBUILD_ALLOWED:
        raise conflict(server, "rebuild")
    _busy(region, server, "rebuild")
    image = glance.find(region, ref)
    if image is None:
        raise fault(400, f"Image {ref} could not be found.")
    if image["status"] != "active":
        raise fault(400, f"Image {ref} is not active.")
    back = "SHUTOFF" if server["status"] == "SHUTOFF" else "ACTIVE"
    store.boots.renew(server["id"])  # a new disk: per-instance user data runs again
    server.update(image_id=ref, name=name, status="REBUILD", fault=None, updated=now(),
                  _next=(back, now() + store.knobs.build_seconds))
    if metadata is not None:
        server["metadata"] = metadata
    if description_allowed and "description" in spec:
        server["description"] = spec["description"]
    admin_pass = spec.get("adminPass")
    return admin_pass if isinstance(admin_pass, str) else None

