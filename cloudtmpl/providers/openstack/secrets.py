"""``Cloud::Secret`` on OpenStack: a Barbican secret (``/v1/secrets``, the catalog's
``key-manager``); physical id: its ``secret_ref`` (the href servers are given).

A secret is named ``<stack>.<address>`` and carries the ``cloudtmpl:stack``,
``cloudtmpl:resource`` and ``cloudtmpl:spec`` markers in its metadata
(``/v1/secrets/{id}/metadata``, set right after the create: a crash between the two
leaves a secret known by its name alone, with no spec to compare).  The payload goes
in the create's JSON body and nowhere else; cloudtmpl compares it by its seal in the
last-applied spec, never by reading it.  Discovery reads a ``text/plain`` payload back
(``Accept: text/plain``) as the ``value`` attribute, marked sensitive; a binary
payload (a generated key) is not read: its ``value`` is not offered.

``generate: {type: symmetric}`` is a Barbican key order (AES), polled until ACTIVE; the
order is deleted once its secret exists (the secret stays).  ``generate: {type:
password}`` is made here with :mod:`secrets` and sent as the payload (Barbican makes no
passwords).  Barbican secrets are immutable: a new payload replaces the secret (the
catalog's ``replace_only``); an update only moves the spec marker.
"""

from __future__ import annotations

import secrets as random_source
import string
from collections.abc import Mapping
from typing import Any

from cloudtmpl.model import TAG_RESOURCE, TAG_SPEC, TAG_STACK, LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import SECRET, CloudError
from cloudtmpl.providers.openstack.client import OpenStackClient, status_of
from cloudtmpl.secret_kinds import content_type
from cloudtmpl.sensitive import mark

SERVICE = "key-manager"
_ALPHABET = string.ascii_letters + string.digits


def secret_id(href: str) -> str:
    return href.rstrip("/").rsplit("/", 1)[-1]


def password(length: int) -> str:
    """A password of ``length`` letters and digits (never written anywhere)."""
    return "".join(random_source.choice(_ALPHABET) for _ in range(length))


def _metadata(client: OpenStackClient, region: str, sid: str) -> dict[str, str]:
    try:
        obj = client.api(region, SERVICE, f"/v1/secrets/{sid}/metadata") or {}
    except CloudError as err:
        if status_of(err) == 404:
            return {}
        raise
    return {str(k): str(v) for k, v in (obj.get("metadata") or {}).items()}


def _payload(client: OpenStackClient, region: str, secret: Mapping[str, Any]) -> str | None:
    """A text payload, marked sensitive; None for a binary one or none."""
    ctype = str((secret.get("content_types") or {}).get("default") or "")
    if not ctype.startswith("text/plain"):
        return None
    try:
        text = client.api(region, SERVICE, f"/v1/secrets/{secret_id(secret['secret_ref'])}"
                          "/payload", headers={"Accept": "text/plain"})
    except CloudError as err:
        if status_of(err) == 404:
            return None
        raise
    return mark(text) if isinstance(text, str) else None


def _live(client: OpenStackClient, region: str, address: str, secret: Mapping[str, Any],
          meta: Mapping[str, str]) -> LiveResource:
    href = str(secret["secret_ref"])
    ctype = (secret.get("content_types") or {}).get("default")
    props = {k: secret[k] for k in ("secret_type", "algorithm", "bit_length", "mode")
             if secret.get(k) is not None}
    if ctype:
        props["payload_content_type"] = str(ctype)
    attributes: dict[str, Any] = {
        "href": href, "status": secret.get("status"), "name": secret.get("name"),
        "secret_type": secret.get("secret_type"), "content_type": ctype}
    value = _payload(client, region, secret)
    if value is not None:
        attributes["value"] = value
    return LiveResource(address=address, kind=SECRET, physical_id=href,
                        placement=client.placement(region), name=str(secret.get("name")),
                        properties=props, attributes=attributes,
                        spec_hash=meta.get(TAG_SPEC), status=str(secret.get("status")))


class SecretHandler:
    kind = SECRET
    listings: tuple[str, ...] = ("barbican_secrets",)

    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        out = []
        with client.session(region):
            for secret in listings.get("barbican_secrets"):
                name = str(secret.get("name") or "")
                if not name.startswith(f"{stack}."):
                    continue
                meta = _metadata(client, region, secret_id(str(secret["secret_ref"])))
                address = kit.tagged_address(meta, stack, name) if meta.get(TAG_STACK) \
                    else kit.tagged_address({TAG_STACK: stack}, stack, name)
                if address is not None:
                    out.append(_live(client, region, address, secret, meta))
        return out

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        props = want.properties
        gen = props.get("generate") or {}
        if gen.get("type") == "symmetric":
            href = self._order(client, region, want)
        else:
            body: dict[str, Any] = {"name": want.name,
                                    "secret_type": props.get("secret_type") or "opaque"}
            for key in ("algorithm", "bit_length", "mode", "expiration",
                        "payload_content_encoding"):
                if props.get(key) is not None:
                    body[key] = props[key]
            body["payload"] = props["payload"] if "payload" in props \
                else password(int(gen.get("length", 32)))
            body["payload_content_type"] = content_type(props)

            def post() -> str:
                obj = client.api(region, SERVICE, "/v1/secrets", method="POST", body=body,
                                 retry=False) or {}
                return str(obj["secret_ref"])

            def lookup() -> str | None:
                found = client.list_all(region, SERVICE, "/v1/secrets", "secrets",
                                        {"name": want.name})
                return str(found[0]["secret_ref"]) if found else None

            href = client.create_or_adopt(post, lookup)
        return self._mark(client, region, want.address, href,
                          {TAG_STACK: want.stack, TAG_RESOURCE: want.address,
                           TAG_SPEC: want.spec_hash})

    @staticmethod
    def _order(client: OpenStackClient, region: str, want: kit.Desired) -> str:
        """A key order for the secret; its secret_ref once ACTIVE (the order deleted)."""
        props, gen = want.properties, want.properties.get("generate") or {}
        meta: dict[str, Any] = {"name": want.name, "algorithm": "aes",
                                "bit_length": int(gen.get("bit_length", 256)),
                                "mode": props.get("mode") or "cbc",
                                "payload_content_type": "application/octet-stream"}
        if props.get("expiration"):
            meta["expiration"] = props["expiration"]
        obj = client.api(region, SERVICE, "/v1/orders", method="POST",
                         body={"type": "key", "meta": meta}, retry=False) or {}
        oid = secret_id(str(obj["order_ref"]))

        def fetch() -> tuple[bool, str, str]:
            order = client.api(region, SERVICE, f"/v1/orders/{oid}") or {}
            status = str(order.get("status"))
            if status == "ERROR":
                raise CloudError(f"Barbican order {oid} failed: "
                                 f"{order.get('error_reason') or 'ERROR'}", permanent=True)
            return status == "ACTIVE", status, str(order.get("secret_ref") or "")

        href = client.poll(want.timeout, f"Barbican order {oid}", fetch)
        client.delete_call(region, SERVICE, f"/v1/orders/{oid}")
        return href

    @staticmethod
    def _mark(client: OpenStackClient, region: str, address: str, href: str,
              meta: Mapping[str, str]) -> LiveResource:
        sid = secret_id(href)
        client.api(region, SERVICE, f"/v1/secrets/{sid}/metadata", method="PUT",
                   body={"metadata": dict(meta)})
        secret = kit.require(client.api(region, SERVICE, f"/v1/secrets/{sid}"),
                             LiveResource(address, SECRET, href, client.placement(region)))
        return _live(client, region, address, secret, meta)

    def update(self, client: OpenStackClient, live: LiveResource,
               change: kit.Change) -> LiveResource:
        """Nothing changes in place (Barbican secrets are immutable): the spec marker."""
        if change.changed:  # the plan replaces it (the catalog's replace_only)
            raise CloudError(f"{', '.join(sorted(change.changed))} cannot change in place: "
                             "Barbican secrets are immutable (replace the secret)",
                             permanent=True)
        region = live.placement.region
        meta = {**_metadata(client, region, secret_id(live.physical_id)),
                TAG_STACK: change.stack, TAG_RESOURCE: live.address,
                TAG_SPEC: change.spec_hash}
        return self._mark(client, region, live.address, live.physical_id, meta)

    def delete(self, client: OpenStackClient, live: LiveResource, timeout: float) -> None:
        client.delete_call(live.placement.region, SERVICE,
                           f"/v1/secrets/{secret_id(live.physical_id)}")
