"""Barbican's API v1 (``/key-manager/{region}/v1/...``): routes, paging and views over
:mod:`.secrets_models`.

=========================================  ===========================================
``GET /``                                  the version document (no token needed)
``POST /v1/secrets``                       201 ``{secret_ref}``
``GET /v1/secrets``                        ``name`` filter, ``limit``/``offset`` paging,
                                           ``total``, ``next``/``previous``
``GET|PUT|DELETE /v1/secrets/{id}``        metadata / the payload once / 204
``GET /v1/secrets/{id}/payload``           the bytes; ``Accept`` must match (406)
``GET|PUT /v1/secrets/{id}/metadata``      user metadata (``PUT`` replaces it whole)
``POST|GET /v1/orders``, ``GET|DELETE
/v1/orders/{id}``                          key orders
=========================================  ===========================================

Bodies are read here, not by the app: a payload ``PUT`` is raw bytes, not JSON.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request

from . import secrets_models as models
from .core import Reply, iso
from .state import JSON, Store

DEFAULT_LIMIT = 10  # Barbican's default page
MAX_LIMIT = 100  # and its largest


def _int(value: str | None, default: int) -> int:
    """Barbican's paging numbers: what is not a number is the default."""
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def secret_view(root: str, secret: JSON) -> JSON:
    ref = f"{root}/v1/secrets/{secret['id']}"
    view: JSON = {
        "secret_ref": ref, "name": secret["name"], "status": secret["status"],
        "secret_type": secret["secret_type"], "algorithm": secret["algorithm"],
        "bit_length": secret["bit_length"], "mode": secret["mode"],
        "expiration": secret["expiration"], "creator_id": secret["creator_id"],
        "created": iso(secret["created"]), "updated": iso(secret["updated"]),
    }
    if secret["content_type"] is not None:
        view["content_types"] = {"default": secret["content_type"]}
    return view


def order_view(root: str, order: JSON) -> JSON:
    view: JSON = {"order_ref": f"{root}/v1/orders/{order['id']}", "type": order["type"],
                  "meta": order["meta"], "status": order["status"],
                  "creator_id": order["creator_id"], "created": iso(order["created"]),
                  "updated": iso(order["updated"])}
    if order["secret_id"]:
        view["secret_ref"] = f"{root}/v1/secrets/{order['secret_id']}"
    return view


def _json(request: Request) -> Any:
    raw = request.get_data()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise models.error(400, "Malformed JSON") from None


def _page(request: Request, base: str, items: list[JSON], key: str) -> Reply:
    offset = max(0, _int(request.args.get("offset"), 0))
    limit = min(MAX_LIMIT, max(1, _int(request.args.get("limit"), DEFAULT_LIMIT)))
    page = items[offset:offset + limit]
    body: JSON = {key: page, "total": len(items)}
    kept = [(k, v) for k, v in request.args.items(multi=True) if k not in ("offset", "limit")]
    if offset + limit < len(items):
        body["next"] = f"{base}?{urlencode([*kept, ('limit', limit), ('offset', offset + limit)])}"
    if offset > 0:
        body["previous"] = f"{base}?" + urlencode(
            [*kept, ("limit", limit), ("offset", max(0, offset - limit))])
    return Reply(200, body)


def _version(root: str) -> JSON:
    return {"id": "v1", "status": "stable", "links": [{"rel": "self", "href": f"{root}/v1/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.key-manager-v1+json"}]}


def version_document(root: str, versioned: bool = False) -> Reply:
    """The service root's (300, every version) or the versioned root's (200, v1)."""
    if versioned:
        return Reply(200, {"version": _version(root)})
    return Reply(300, {"versions": {"values": [_version(root)]}})


def handle(store: Store, request: Request, region_name: str, rest: str, root: str,
           creator: str) -> Reply:
    """One authenticated Barbican request; ``rest`` is the path below ``/v1``."""
    parts = [p for p in rest.split("/") if p]
    method = request.method
    with store.lock:
        region = store.regions[region_name]
        if parts == ["secrets"] and method == "POST":
            secret = models.create_secret(region, _json(request), creator)
            ref = f"{root}/v1/secrets/{secret['id']}"
            return Reply(201, {"secret_ref": ref}, {"Location": ref})
        if parts == ["secrets"] and method == "GET":
            found = sorted(models.secrets_of(region).values(), key=lambda s: s["created"])
            name = request.args.get("name")
            if name is not None:
                found = [s for s in found if s["name"] == name]
            return _page(request, f"{root}/v1/secrets",
                         [secret_view(root, s) for s in found], "secrets")
        if len(parts) >= 2 and parts[0] == "secrets":
            return _one_secret(request, region, parts[1], parts[2:], root)
        if parts == ["orders"] and method == "POST":
            order = models.create_order(region, _json(request), creator,
                                        store.knobs.lb_seconds)
            ref = f"{root}/v1/orders/{order['id']}"
            return Reply(202, {"order_ref": ref}, {"Location": ref})
        if parts == ["orders"] and method == "GET":
            orders = sorted(models.orders_of(region).values(), key=lambda o: o["created"])
            return _page(request, f"{root}/v1/orders",
                         [order_view(root, models.settle(region, o)) for o in orders],
                         "orders")
        if len(parts) == 2 and parts[0] == "orders" and method == "GET":
            return Reply(200, order_view(root, models.get_order(region, parts[1])))
        if len(parts) == 2 and parts[0] == "orders" and method == "DELETE":
            models.delete_order(region, parts[1])
            return Reply(204)
        if parts in (["secrets"], ["orders"]) or (len(parts) == 2 and parts[0] == "orders"):
            raise models.error(405, f"Method {method} is not allowed here")
        raise models.error(404, f"The resource could not be found: /v1{rest}")


def _one_secret(request: Request, region: Any, sid: str, sub: list[str], root: str) -> Reply:
    method = request.method
    secret = models.get_secret(region, sid)
    if not sub and method == "GET":
        return Reply(200, secret_view(root, secret))
    if not sub and method == "DELETE":
        models.delete_secret(region, sid)
        return Reply(204)
    if not sub and method == "PUT":
        encoding = request.headers.get("Content-Encoding")
        models.put_payload(secret, request.get_data(), request.headers.get("Content-Type"),
                           encoding.lower() if encoding else None)
        return Reply(204)
    if sub == ["payload"] and method == "GET":
        data, ctype = models.get_payload(secret, request.headers.get("Accept"))
        if models.text_type(ctype):
            return Reply(200, data.decode("utf-8", "replace"))
        return Reply(200, data, {"Content-Type": ctype})
    if sub == ["metadata"] and method == "GET":
        return Reply(200, {"metadata": dict(secret["metadata"])})
    if sub == ["metadata"] and method == "PUT":
        models.set_metadata(secret, _json(request))
        return Reply(201, {"metadata_ref": f"{root}/v1/secrets/{sid}/metadata"})
    if sub in ([], ["payload"], ["metadata"]):
        raise models.error(405, f"Method {method} is not allowed here")
    raise models.error(404, f"The resource could not be found: secrets/{sid}/{'/'.join(sub)}")
