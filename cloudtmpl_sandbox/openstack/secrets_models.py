"""Barbican's secrets and orders: their state, and what Barbican (API v1) refuses.

A secret is made with its payload (``POST /v1/secrets`` with ``payload`` and
``payload_content_type``) or without one, then given it once (``PUT`` with the payload
as the body): a secret's payload never changes (409 after), as in Barbican.  The
checks are Barbican's own: a payload needs a content type Barbican supports; an
``application/octet-stream`` payload comes base64-encoded (``payload_content_encoding:
base64``), a ``text/plain`` one with no encoding; an empty payload, an expiration in the
past or a payload over 10,000 bytes is refused; metadata keys are lowercase.  A payload
is read back only with an ``Accept`` that matches its content type (406 otherwise), and
an expired secret's payload is not handed out.

An order (``POST /v1/orders``, ``type: key``) makes a symmetric key: ``PENDING`` at
first, then ``ACTIVE`` with its ``secret_ref`` (the sandbox's ``lb_seconds`` later);
deleting an order leaves its secret.  Orders of type ``asymmetric`` and ``certificate``
need a crypto or CA plugin this sandbox does not have: refused with 400.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import os
from typing import Any

from .core import ApiError, new_id, now
from .state import JSON, Region

SECRET_TYPES = ("symmetric", "public", "private", "passphrase", "certificate", "opaque")
# the payload content types Barbican's simple-crypto plugin stores
CONTENT_TYPES = ("text/plain", "text/plain;charset=utf-8", "text/plain; charset=utf-8",
                 "application/octet-stream", "application/pkcs8", "application/pkix-cert")
MAX_SECRET_BYTES = 10000  # Barbican's max_allowed_secret_in_bytes
ORDER_TYPES = ("key", "asymmetric", "certificate")
AES_BITS = (128, 192, 256)
_REASONS = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed", 406: "Not Acceptable", 409: "Conflict",
            413: "Request Entity Too Large",
            415: "Unsupported Media Type"}
SECRET_GONE = "Not Found. Sorry but your secret is in another castle."


def error(status: int, description: str) -> ApiError:
    """An error as Barbican answers it."""
    return ApiError(status, {"code": status, "title": _REASONS.get(status, "Error"),
                             "description": description})


def _schema(reason: str, what: str = "Secret") -> ApiError:
    return error(400, f"Provided object does not match schema '{what}': {reason}. "
                 "Invalid property: see the API reference")


def secrets_of(region: Region) -> dict[str, JSON]:
    return region.barbican.setdefault("secrets", {})


def orders_of(region: Region) -> dict[str, JSON]:
    return region.barbican.setdefault("orders", {})


def text_type(ctype: str) -> bool:
    return ctype.replace(" ", "").lower().startswith("text/plain")


def _expiration(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise _schema("'expiration' must be a string")
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _schema("Invalid date for 'expiration'") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    if when.timestamp() <= now():
        raise _schema("'expiration' is before current time")
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _check_fields(body: JSON) -> None:
    for key in ("name", "algorithm", "mode", "payload", "payload_content_type",
                "payload_content_encoding", "secret_type"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise _schema(f"{body[key]!r} is not of type 'string' ({key})")
    if len(body.get("name") or "") > 255:
        raise _schema("'name' is too long (at most 255 characters)")
    bits = body.get("bit_length")
    if bits is not None and (not isinstance(bits, int) or isinstance(bits, bool)
                             or not 1 <= bits <= 32767):
        raise _schema(f"{bits!r} is not a valid bit_length (an integer from 1 to 32767)")
    if body.get("secret_type") is not None and body["secret_type"] not in SECRET_TYPES:
        raise _schema(f"{body['secret_type']!r} is not one of {list(SECRET_TYPES)} "
                      "(secret_type)")
    if body.get("payload_content_encoding") is not None \
            and body["payload_content_encoding"] != "base64":
        raise _schema(f"{body['payload_content_encoding']!r} is not one of ['base64'] "
                      "(payload_content_encoding)")


def decode_payload(payload: str | bytes, ctype: str, encoding: str | None) -> bytes:
    """The payload's bytes as stored, after Barbican's content type checks."""
    if ctype.lower() not in CONTENT_TYPES:
        raise error(400, f"Provided object does not match schema 'Secret': payload_content_"
                    f"type {ctype!r} is not supported (one of {', '.join(CONTENT_TYPES)})")
    raw = payload.encode("utf-8") if isinstance(payload, str) else payload
    if not raw.strip():
        raise _schema("If 'payload' specified, must be non empty")
    if len(raw) > MAX_SECRET_BYTES:
        raise error(413, "Provided information too large to process")
    if text_type(ctype):
        if encoding is not None:
            raise _schema("payload_content_encoding is not supported with a text/plain "
                          "payload_content_type")
        return raw
    if ctype.lower() == "application/octet-stream" and encoding is None:
        raise _schema("payload_content_encoding must be specified when payload_content_type"
                      " is application/octet-stream")
    if encoding is None:
        return raw
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise _schema("Invalid payload for payload_content_encoding") from None


def create_secret(region: Region, body: Any, creator: str) -> JSON:
    """``POST /v1/secrets``: the new secret (its payload too when one is given)."""
    if not isinstance(body, dict):
        raise error(400, "Provided object does not match schema 'Secret': the body must be "
                    "a JSON object")
    _check_fields(body)
    payload, ctype = body.get("payload"), body.get("payload_content_type")
    encoding = body.get("payload_content_encoding")
    if payload is not None and ctype is None:
        raise _schema("If 'payload' is supplied, 'payload_content_type' must also be "
                      "supplied")
    if payload is None and (ctype is not None or encoding is not None):
        raise _schema("payload_content_type and payload_content_encoding are allowed only "
                      "with a payload")
    expiration = _expiration(body.get("expiration"))
    data = decode_payload(payload, str(ctype), encoding) if payload is not None else None
    sid, stamp = new_id(), now()
    secret: JSON = {"id": sid, "name": (body.get("name") or "").strip() or None,
              "secret_type": body.get("secret_type") or "opaque",
              "algorithm": body.get("algorithm"), "bit_length": body.get("bit_length"),
              "mode": body.get("mode"), "expiration": expiration,
              "content_type": ctype if data is not None else None,
              "payload": data, "metadata": {}, "created": stamp, "updated": stamp,
              "creator_id": creator, "status": "ACTIVE"}
    secrets_of(region)[sid] = secret
    return secret


def get_secret(region: Region, sid: str) -> JSON:
    found = secrets_of(region).get(sid)
    if found is None:
        raise error(404, SECRET_GONE)
    return found


def put_payload(secret: JSON, body: bytes, ctype: str | None, encoding: str | None) -> None:
    """``PUT /v1/secrets/{id}``: the payload of a secret made without one, once."""
    if secret["payload"] is not None:
        raise error(409, "Secret already has data, cannot modify it.")
    if not ctype:
        raise error(415, "Content-Type of the payload is required")
    ctype = ctype.split(",")[0].strip()
    if ctype.lower() not in CONTENT_TYPES:
        raise error(415, f"Unsupported Media Type: {ctype}")
    if ctype.lower() == "application/octet-stream" and encoding is None:
        data = body  # a binary body comes as it is over PUT
        if not data.strip():
            raise _schema("If 'payload' specified, must be non empty")
        if len(data) > MAX_SECRET_BYTES:
            raise error(413, "Provided information too large to process")
    else:
        data = decode_payload(body, ctype, encoding)
    secret.update(payload=data, content_type=ctype, updated=now())


def expired(secret: JSON) -> bool:
    exp = secret.get("expiration")
    return exp is not None and dt.datetime.fromisoformat(exp).timestamp() <= now()


def get_payload(secret: JSON, accept: str | None) -> tuple[bytes, str]:
    """``GET /v1/secrets/{id}/payload``: (bytes, content type); 406 for another Accept."""
    if secret["payload"] is None:
        raise error(404, "Not Found. Sorry but your secret has no payload.")
    if expired(secret):
        raise error(404, SECRET_GONE)
    ctype = str(secret["content_type"])
    wanted = [a.split(";")[0].strip().lower() for a in (accept or "*/*").split(",")]
    own = ctype.split(";")[0].strip().lower()
    if own not in wanted and "*/*" not in wanted:
        raise error(406, f"Wrong payload content-type: the secret's is {ctype}")
    return bytes(secret["payload"]), ctype


def delete_secret(region: Region, sid: str) -> None:
    if secrets_of(region).pop(sid, None) is None:
        raise error(404, SECRET_GONE)


def set_metadata(secret: JSON, body: Any) -> JSON:
    """``PUT /v1/secrets/{id}/metadata``: the metadata, replaced whole."""
    meta = body.get("metadata") if isinstance(body, dict) else None
    if not isinstance(meta, dict):
        raise _schema("'metadata' is a required property", "Metadata")
    for key, value in meta.items():
        if not isinstance(value, str) or len(key) > 255 or len(value) > 255:
            raise _schema(f"metadata {key!r}: keys and values are strings of at most 255 "
                          "characters", "Metadata")
        if key != key.lower():
            raise error(400, "Invalid Metadata. Keys must be lowercase.")
    secret["metadata"] = dict(meta)
    secret["updated"] = now()
    return secret["metadata"]


# ---------------------------------------------------------------------------- orders


def create_order(region: Region, body: Any, creator: str, delay: float) -> JSON:
    """``POST /v1/orders``: a key order; its secret exists once the order is ACTIVE."""
    if not isinstance(body, dict):
        raise _schema("the body must be a JSON object", "Order")
    kind, meta = body.get("type"), body.get("meta")
    if kind not in ORDER_TYPES:
        raise _schema(f"{kind!r} is not one of {list(ORDER_TYPES)} (type)", "Order")
    if not isinstance(meta, dict):
        raise _schema("'meta' is a required property", "Order")
    if kind != "key":
        raise error(400, f"Order type {kind!r} needs a crypto or certificate plugin this "
                    "sandbox does not have")
    _check_fields({k: v for k, v in meta.items() if k != "expiration"})
    if "payload" in meta:
        raise _schema("'payload' not allowed for key type order", "Order")
    algorithm = str(meta.get("algorithm") or "")
    if not algorithm:
        raise _schema("'algorithm' is a required property", "Order")
    if algorithm.lower() != "aes":
        raise error(400, f"Invalid algorithm {algorithm!r}: the key generator supports aes")
    bits = meta.get("bit_length")
    if bits not in AES_BITS:
        raise error(400, f"Invalid bit_length {bits!r}: aes takes {AES_BITS}")
    ctype = meta.get("payload_content_type") or "application/octet-stream"
    if ctype != "application/octet-stream":
        raise _schema("payload_content_type must be application/octet-stream for a key "
                      "order", "Order")
    expiration = _expiration(meta.get("expiration"))
    oid, stamp = new_id(), now()
    order = {"id": oid, "type": kind, "meta": dict(meta), "status": "PENDING",
             "created": stamp, "updated": stamp, "ready_at": stamp + delay,
             "creator_id": creator, "secret_id": None, "expiration": expiration}
    orders_of(region)[oid] = order
    return order


def settle(region: Region, order: JSON) -> JSON:
    """The order as it stands now: past its time, ACTIVE with its generated secret."""
    if order["status"] == "PENDING" and now() >= order["ready_at"]:
        meta = order["meta"]
        sid, stamp = new_id(), now()
        secrets_of(region)[sid] = {
            "id": sid, "name": (meta.get("name") or "").strip() or None,
            "secret_type": "symmetric", "algorithm": meta["algorithm"],
            "bit_length": meta["bit_length"], "mode": meta.get("mode"),
            "expiration": order["expiration"], "content_type": "application/octet-stream",
            "payload": os.urandom(int(meta["bit_length"]) // 8), "metadata": {},
            "created": stamp, "updated": stamp, "creator_id": order["creator_id"],
            "status": "ACTIVE"}
        order.update(status="ACTIVE", secret_id=sid, updated=stamp)
    return order


def get_order(region: Region, oid: str) -> JSON:
    found = orders_of(region).get(oid)
    if found is None:
        raise error(404, "Not Found. Sorry but your order is in another castle.")
    return settle(region, found)


def delete_order(region: Region, oid: str) -> None:
    if orders_of(region).pop(oid, None) is None:
        raise error(404, "Not Found. Sorry but your order is in another castle.")
