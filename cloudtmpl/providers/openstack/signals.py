"""Wait condition handles and wait conditions on OpenStack: Swift containers, signals
PUT through a Swift temp URL (Heat's ``TEMP_URL_SIGNAL``).

Handle: physical id = the container ``<stack>.<address>``, made with the metadata
``Cloudtmpl-Stack``, ``-Resource``, ``-Spec``, ``-Kind: wait-handle`` and ``-Expires``,
a temp URL key of its own (``X-Container-Meta-Temp-URL-Key``, random) and
``X-Versions-Enabled: true``.  Its URL is a temp URL for ``PUT`` of the object
``signal`` (HMAC-SHA256 over ``PUT``, the expiry and the object's ``/v1/`` path), which
allows nothing else; every ``PUT`` keeps the one before as a version, so each is a
signal.  The URL is computed again from the container's metadata at each discovery.
Deleting it deletes every version, then the container.

Condition: physical id = its own container ``<stack>.<address>`` (``-Kind:
wait-condition``, ``-Handle``: the handle's container), made when the wait succeeded,
with a record ``condition.json`` (the count and the data): a satisfied condition is
found again, so a later plan does not wait again.  A crash between the container and
its record leaves a container discovery does not report: the next apply waits again
(the signals are still there) and writes it; deleting the handle deletes it too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from cloudtmpl.model import LiveResource, physical_name
from cloudtmpl.orchestration_kinds import CONDITION, HANDLE
from cloudtmpl.providers import kit, waiting
from cloudtmpl.providers.base import CloudError
from cloudtmpl.providers.openstack.client import CONDITION_RECORD, OpenStackClient
from cloudtmpl.providers.openstack.swift import NoEndpoint, path_of

SIGNAL_OBJECT = "signal"
# Swift's temp URLs expire; Heat signs its signal URLs up to the largest 32-bit time
EXPIRES = 2147482800
_META = "x-container-meta-"
_KIND, _HANDLE, _EXPIRES = "cloudtmpl-kind", "cloudtmpl-handle", "cloudtmpl-expires"


def _signal_path(endpoint: str, container: str) -> tuple[str, str]:
    """(the signal object's URL without query, its path from ``/v1/`` as signed)."""
    path = urlsplit(endpoint).path
    at = path.find("/v1/")
    if at < 0:
        raise CloudError(f"the object-store endpoint {endpoint} has no /v1/ path: cannot "
                         "sign a temp URL for it", permanent=True)
    account = path[at:].rstrip("/")
    url = f"{endpoint.rstrip('/')}/{quote(container, safe='')}/{SIGNAL_OBJECT}"
    return url, unquote(f"{account}/{container}/{SIGNAL_OBJECT}")


def temp_url(endpoint: str, container: str, key: str, expires: int) -> str:
    """The temp URL that allows a ``PUT`` of the handle's signal object."""
    url, path = _signal_path(endpoint, container)
    sig = hmac.new(key.encode(), f"PUT\n{expires}\n{path}".encode(),
                   hashlib.sha256).hexdigest()
    return f"{url}?temp_url_sig={sig}&temp_url_expires={expires}"


def handle_attributes(url: str) -> dict[str, Any]:
    """The handle's attributes for its signal ``url`` (the same on every cloud)."""
    return {"endpoint": url, "curl_cli": f"curl -i -X PUT '{url}'", "token": "",
            "signal": json.dumps({"alarm_url": url})}


def _meta(head: Mapping[str, str], key: str) -> str | None:
    return head.get(_META + key)


def _handle_live(client: OpenStackClient, region: str, name: str,
                 head: Mapping[str, str]) -> LiveResource:
    key = _meta(head, "temp-url-key") or ""
    endpoint = client.swift.endpoint(region)
    url = temp_url(endpoint, name, key, int(_meta(head, _EXPIRES) or EXPIRES)) \
        if endpoint and key else ""
    return LiveResource(address=_meta(head, "cloudtmpl-resource") or name, kind=HANDLE.kind,
                        physical_id=name, placement=client.placement(region), name=name,
                        properties={}, attributes=handle_attributes(url) if url else {},
                        spec_hash=_meta(head, "cloudtmpl-spec"), status="available")


def _versions(client: OpenStackClient, region: str, name: str) -> list[tuple[str, str, bool]]:
    """(object, version id, is a delete marker) of every version in container ``name``,
    oldest first per object."""
    out: list[tuple[str, str, bool]] = []
    marker = ""
    while True:
        params = {"versions": "", "format": "json", **({"marker": marker} if marker else {})}
        status, _, body = client.swift.request(region, path_of(name), params=params,
                                               ok=(404,))
        page = body if status != 404 and isinstance(body, list) else []
        for item in page:
            if isinstance(item, dict):
                out.append((str(item.get("name")), str(item.get("version_id")),
                            "swift_versions_deleted" in str(item.get("content_type"))))
        if len(page) < 10000 or not page:
            break
        marker = str(page[-1].get("name"))
    by_object: dict[str, list[tuple[str, str, bool]]] = {}
    for entry in out:
        by_object.setdefault(entry[0], []).append(entry)
    return [e for entries in by_object.values() for e in sorted(entries, key=lambda e: e[1])]


def _text(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def _empty(client: OpenStackClient, region: str, name: str) -> None:
    """Delete every version of every object of container ``name``, then the container
    (gone already: nothing to do)."""
    try:
        if client.swift.head(region, name) is None:
            return
        for obj, version, _ in _versions(client, region, name):
            client.swift.request(region, path_of(name, obj), method="DELETE",
                                 params={"version-id": version}, ok=(404,))
        for obj in client.swift.objects(region, name):  # written with versioning off
            client.swift.request(region, path_of(name, obj), method="DELETE", ok=(404,))
    except NoEndpoint:
        return
    status, _, _ = client.swift.request(region, path_of(name), method="DELETE",
                                        ok=(404, 409))
    if status == 409:
        raise CloudError(f"container {name} is not empty (HTTP 409): objects were added "
                         "while it was being deleted", permanent=True)


class HandleHandler(kit.NothingInPlace):
    """``Cloud::Orchestration::WaitConditionHandle``: a Swift container and a temp URL."""

    kind = HANDLE.kind
    listings: tuple[str, ...] = ("containers",)

    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return [_handle_live(client, region, name, head)
                for name, head in listings.get("containers")
                if _meta(head, "cloudtmpl-stack") == stack
                and _meta(head, _KIND) == "wait-handle"]

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        name = physical_name(want.stack, want.address)
        try:
            head = client.swift.head(region, name)
        except NoEndpoint:
            raise CloudError(f"target {client.target.name!r} has no object-store (Swift) "
                             f"endpoint in region {region}: it cannot hold the wait condition "
                             "handle's signals", permanent=True) from None
        if head is not None and (_meta(head, "cloudtmpl-stack"), _meta(head, _KIND)) not in (
                (want.stack, "wait-handle"), (None, None)):
            raise CloudError(f"container {name!r} exists and is not this stack's handle",
                             permanent=True)
        key = (_meta(head, "temp-url-key") if head else None) or secrets.token_hex(32)
        client.swift.request(region, path_of(name), method="PUT", headers={
            "X-Container-Meta-Cloudtmpl-Stack": want.stack,
            "X-Container-Meta-Cloudtmpl-Resource": want.address,
            "X-Container-Meta-Cloudtmpl-Spec": want.spec_hash,
            "X-Container-Meta-Cloudtmpl-Kind": "wait-handle",
            "X-Container-Meta-Cloudtmpl-Expires": str(EXPIRES),
            "X-Container-Meta-Temp-URL-Key": key,
            "X-Versions-Enabled": "true",
        })
        head = client.swift.head(region, name)
        if head is None:
            raise CloudError(f"container {name} ({want.address}) vanished", permanent=False)
        return _handle_live(client, region, name, head)

    def delete(self, client: OpenStackClient, live: LiveResource, timeout: float) -> None:
        region, name = live.placement.region, live.physical_id
        try:
            head = client.swift.head(region, name)
        except NoEndpoint:
            return
        stack = _meta(head or {}, "cloudtmpl-stack")
        if stack:  # a condition of this handle whose record a crash kept from being written
            for other in client.swift.containers(region, f"{stack}."):
                found = client.swift.head(region, other) or {}
                if _meta(found, _KIND) == "wait-condition" and _meta(found, _HANDLE) == name:
                    _empty(client, region, other)
        _empty(client, region, name)


def handle_container(handle: Any) -> str:
    """The handle's container, from the condition's ``handle`` (its signal URL, as
    get_resource gives it, or the container's name)."""
    text = str(handle or "")
    if "://" not in text:
        if not text:
            raise CloudError("handle is required (get_resource of a wait condition handle)",
                             permanent=True)
        return text
    parts = urlsplit(text).path.split("/")
    at = parts.index("v1") if "v1" in parts else -1
    if at < 0 or len(parts) < at + 4:
        raise CloudError("handle is not a wait condition handle's URL (a Swift temp URL)",
                         permanent=True)
    return unquote(parts[at + 2])


def _condition_live(client: OpenStackClient, region: str, name: str,
                    head: Mapping[str, str], record: Any) -> LiveResource:
    data = record.get("data") if isinstance(record, dict) else None
    if isinstance(record, (str, bytes)):
        try:
            data = json.loads(record).get("data")
        except (ValueError, AttributeError):
            data = None
    return LiveResource(address=_meta(head, "cloudtmpl-resource") or name,
                        kind=CONDITION.kind, physical_id=name,
                        placement=client.placement(region), name=name, properties={},
                        attributes={"data": data if isinstance(data, dict) else None},
                        spec_hash=_meta(head, "cloudtmpl-spec"),
                        status="satisfied" if record is not None else "recording")


class ConditionHandler(kit.NothingInPlace):
    """``Cloud::Orchestration::WaitCondition``: waits for its handle's signals."""

    kind = CONDITION.kind
    listings: tuple[str, ...] = ("containers", "wait_conditions")

    def to_live(self, client: OpenStackClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return [_condition_live(client, region, name, head, record)
                for name, head, record in listings.get("wait_conditions")
                if _meta(head, "cloudtmpl-stack") == stack and record is not None]

    def create(self, client: OpenStackClient, region: str, want: kit.Desired) -> LiveResource:
        wanted = waiting.Wanted.of(want.properties)
        source = handle_container(want.properties.get("handle"))
        head = client.swift.head(region, source)
        if head is None or _meta(head, _KIND) != "wait-handle":
            raise CloudError(f"the wait condition's handle (container {source}) is not a "
                             f"wait condition handle in {region}", permanent=True)
        label = f"{_meta(head, 'cloudtmpl-resource') or source} (container {source})"

        seen: dict[str, bytes] = {}  # version id -> its body (a version never changes)

        def read() -> list[bytes]:
            bodies = []
            for obj, version, deleted in _versions(client, region, source):
                if obj != SIGNAL_OBJECT or deleted:
                    continue
                if version not in seen:
                    status, _, body = client.swift.request(
                        region, path_of(source, obj), params={"version-id": version},
                        ok=(404,))
                    if status == 404:
                        continue
                    seen[version] = _text(body)
                bodies.append(seen[version])
            return bodies

        signals = waiting.wait(read, wanted, label, clock=client.clock,
                               sleep=client._sleep, max_interval=client._poll_max)
        name = physical_name(want.stack, want.address)
        client.swift.request(region, path_of(name), method="PUT", headers={
            "X-Container-Meta-Cloudtmpl-Stack": want.stack,
            "X-Container-Meta-Cloudtmpl-Resource": want.address,
            "X-Container-Meta-Cloudtmpl-Spec": want.spec_hash,
            "X-Container-Meta-Cloudtmpl-Kind": "wait-condition",
            "X-Container-Meta-Cloudtmpl-Handle": source,
        })
        record = {"count": wanted.count, "data": waiting.data_of(signals)}
        client.swift.request(region, path_of(name, CONDITION_RECORD), method="PUT",
                             headers={"Content-Type": "application/json"},
                             data=json.dumps(record))
        head = client.swift.head(region, name) or {}
        return _condition_live(client, region, name, head, record)

    def delete(self, client: OpenStackClient, live: LiveResource, timeout: float) -> None:
        _empty(client, live.placement.region, live.physical_id)
